// Which components of the bundled model carry negation and contrast (docs/circuits.md, "On the
// bundled model"). Minimal pairs from the review language: a negated review against the same
// review with its negator replaced by `very` (the label flips), and a contrast review against the
// same review with `but` replaced by `and` (kept when the label flips). For each family:
// activation patching of every head and of the stream by (layer, token role), attribution
// patching's agreement with it, direct logit attribution, path patching of the top head to the
// logits, and the ablation check (accuracy per subset with the top heads zero- or mean-ablated).
//
//   circuits_reviews [--reviews N] [--seed S] [--threads N]
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <glassbox/circuits.hpp>
#include <glassbox/datasets/reviews.hpp>
#include <glassbox/models/gpt2.hpp>

namespace gb = glassbox;
namespace ds = glassbox::datasets;

namespace {

struct pair_case {
  gb::token_sequence clean, corrupt;
  gb::token_id clean_label = 0, corrupt_label = 0;
  std::size_t changed = 0;   ///< the position that differs (the negator, or `but`)
  std::size_t deciding = 0;  ///< the deciding word of the clean review
};

/// The role of a position in a pair: the changed token, the deciding word, the marker, or other.
std::size_t role_of(const pair_case& p, std::size_t t) {
  if (t == p.changed) return 0;
  if (t == p.deciding) return 1;
  if (t + 1 == p.clean.size()) return 2;
  return 3;
}
const char* role_names[] = {"changed token", "deciding word", "marker =>", "other tokens"};

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = static_cast<double>(a.size());
  double ma = 0, mb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) ma += a[i] / n, mb += b[i] / n;
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ab += (a[i] - ma) * (b[i] - mb);
    aa += (a[i] - ma) * (a[i] - ma);
    bb += (b[i] - mb) * (b[i] - mb);
  }
  return ab / std::sqrt(aa * bb);
}

gb::token_id predicted(const gb::tensor2& z) {
  return z(0, ds::review_positive_id) >= z(0, ds::review_negative_id) ? ds::review_positive_id
                                                                      : ds::review_negative_id;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n_reviews = 3000, threads = 2;
  std::uint64_t seed = 17;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--reviews") n_reviews = std::stoul(next());
    else if (a == "--seed") seed = std::stoull(next());
    else if (a == "--threads") threads = std::stoul(next());
    else {
      std::fprintf(stderr, "usage: circuits_reviews [--reviews N] [--seed S] [--threads N]\n");
      return 2;
    }
  }
  const auto model = gb::models::gpt2::load(std::string(GLASSBOX_SOURCE_DIR) + "/models/reviews");
  const std::size_t L = model.n_layer(), H = model.n_head();
  const gb::pass_threads_scope scope(1);
  const gb::execution_options exec{.threads = threads};
  const auto reviews = ds::generate_reviews(n_reviews, seed);
  const gb::token_id very = *ds::find_review_token("very"), and_ = *ds::find_review_token("and"),
                     but = *ds::find_review_token("but");

  std::map<std::string, std::vector<pair_case>> families;
  for (const auto& r : reviews) {
    if (r.truth.deciding_words.size() != 1) continue;
    const std::size_t deciding = r.truth.deciding_words[0];
    if (r.negated()) {
      for (std::size_t p = 0; p < r.tokens.size(); ++p) {
        const auto& pr = r.properties()[p];
        if (!pr.is_negator || pr.modifies != static_cast<std::ptrdiff_t>(deciding)) continue;
        pair_case c{r.tokens, r.tokens, r.true_label, 0, p, deciding};
        c.corrupt[p] = very;
        const auto truth = ds::label_of(c.corrupt);
        if (!truth.label() || *truth.label() == c.clean_label) continue;
        c.corrupt_label = *truth.label();
        families["negation"].push_back(c);
        break;
      }
    }
    if (r.contrast() && r.truth.but_position) {
      pair_case c{r.tokens, r.tokens, r.true_label, 0, *r.truth.but_position, deciding};
      c.corrupt[c.changed] = and_;
      const auto truth = ds::label_of(c.corrupt);
      if (!truth.label() || *truth.label() == c.clean_label) continue;
      c.corrupt_label = *truth.label();
      families["contrast"].push_back(c);
    }
  }
  (void)but;

  std::printf("circuits_reviews: models/reviews (L=%zu, H=%zu), %zu reviews (seed %llu), %zu thread(s)\n\n", L, H,
              n_reviews, static_cast<unsigned long long>(seed), threads);
  for (auto& [name, all] : families) {
    // Keep the pairs the model gets right on both sides.
    std::vector<pair_case> pairs;
    for (const auto& c : all) {
      const std::vector<std::size_t> last = {c.clean.size() - 1};
      if (predicted(model.logits_at(c.clean, last)) == c.clean_label &&
          predicted(model.logits_at(c.corrupt, last)) == c.corrupt_label)
        pairs.push_back(c);
      if (pairs.size() == 200) break;
    }
    std::printf("## %s: %zu minimal pairs (of %zu found), both sides predicted right\n\n", name.c_str(), pairs.size(),
                all.size());
    using shape2 = std::array<std::size_t, 2>;
    xt::xtensor<double, 2> head_mean = xt::zeros<double>(shape2{L, H});
    xt::xtensor<double, 2> att_mean = xt::zeros<double>(shape2{L, H});
    xt::xtensor<double, 2> role_mean = xt::zeros<double>(shape2{L, 4});
    xt::xtensor<double, 2> role_count = xt::zeros<double>(shape2{L, 4});
    xt::xtensor<double, 2> dla_mean = xt::zeros<double>(shape2{L, H + 1});
    std::vector<double> act_all, att_all;
    for (const auto& c : pairs) {
      const auto metric = gb::target::contrast(c.clean_label, c.corrupt_label, gb::target_kind::logit);
      const auto heads = gb::activation_patching(model, c.clean, c.corrupt, metric,
                                                 {.level = gb::patch_level::head, .exec = exec});
      const auto heads_att = gb::attribution_patching(model, c.clean, c.corrupt, metric, {.level = gb::patch_level::head});
      head_mean += heads.restored / static_cast<double>(pairs.size());
      att_mean += heads_att.restored / static_cast<double>(pairs.size());
      for (std::size_t i = 0; i < heads.restored.size(); ++i) {
        act_all.push_back(heads.restored.data()[i]);
        att_all.push_back(heads_att.restored.data()[i]);
      }
      const auto resid = gb::activation_patching(model, c.clean, c.corrupt, metric,
                                                 {.level = gb::patch_level::residual, .exec = exec});
      for (std::size_t l = 0; l < L; ++l)
        for (std::size_t t = 0; t < c.clean.size(); ++t) {
          role_mean(l, role_of(c, t)) += resid.restored(l, t);
          role_count(l, role_of(c, t)) += 1;
        }
      const auto dla = gb::direct_logit_attribution(model, c.clean, c.clean_label, c.corrupt_label);
      for (const auto& comp : dla.components) {
        if (comp.kind == "head") dla_mean(comp.layer, comp.index) += comp.contribution / static_cast<double>(pairs.size());
        if (comp.kind == "mlp") dla_mean(comp.layer, H) += comp.contribution / static_cast<double>(pairs.size());
      }
    }
    std::printf("Head activation patching (clean head output into the corrupted run), mean restored share:\n\n");
    std::printf("| block |");
    for (std::size_t h = 0; h < H; ++h) std::printf(" H%zu |", h);
    std::printf("\n|---|");
    for (std::size_t h = 0; h < H; ++h) std::printf("---|");
    std::printf("\n");
    for (std::size_t l = 0; l < L; ++l) {
      std::printf("| L%zu |", l);
      for (std::size_t h = 0; h < H; ++h) std::printf(" %.3f |", head_mean(l, h));
      std::printf("\n");
    }
    std::printf("\nAttribution patching against it (every head of every pair): Pearson r = %.3f over %zu entries\n",
                pearson(act_all, att_all), act_all.size());
    {
      std::vector<std::pair<double, std::size_t>> by_att;
      for (std::size_t i = 0; i < L * H; ++i) by_att.push_back({att_mean.data()[i], i});
      std::sort(by_att.rbegin(), by_att.rend());
      std::printf("Top heads by attribution patching's mean restored share:");
      for (std::size_t k = 0; k < 3; ++k)
        std::printf(" L%zuH%zu (%.3f)", by_att[k].second / H, by_att[k].second % H, by_att[k].first);
      std::printf("\n\n");
    }
    std::printf("Residual-stream patching by token role, mean restored share (block = the stream entering it):\n\n");
    std::printf("| block | %s | %s | %s | %s |\n|---|---|---|---|---|\n", role_names[0], role_names[1], role_names[2],
                role_names[3]);
    for (std::size_t l = 0; l < L; ++l) {
      std::printf("| %zu |", l);
      for (std::size_t k = 0; k < 4; ++k)
        std::printf(" %.3f |", role_count(l, k) > 0 ? role_mean(l, k) / role_count(l, k) : std::nan(""));
      std::printf("\n");
    }
    std::printf("\nDirect logit attribution of logit(clean label) - logit(corrupted label) on the clean review, mean:\n\n");
    std::printf("| block |");
    for (std::size_t h = 0; h < H; ++h) std::printf(" H%zu |", h);
    std::printf(" MLP |\n|---|");
    for (std::size_t h = 0; h <= H; ++h) std::printf("---|");
    std::printf("\n");
    for (std::size_t l = 0; l < L; ++l) {
      std::printf("| L%zu |", l);
      for (std::size_t h = 0; h <= H; ++h) std::printf(" %+.2f |", dla_mean(l, h));
      std::printf("\n");
    }

    // The top two heads: path patching to the logits, and the ablation check.
    std::vector<std::pair<double, std::size_t>> order;
    for (std::size_t i = 0; i < L * H; ++i) order.push_back({head_mean.data()[i], i});
    std::sort(order.rbegin(), order.rend());
    std::printf("\nTop heads by restored share:");
    for (std::size_t k = 0; k < 3; ++k)
      std::printf(" L%zuH%zu (%.3f)", order[k].second / H, order[k].second % H, order[k].first);
    double direct = 0;
    for (const auto& c : pairs) {
      const auto metric = gb::target::contrast(c.clean_label, c.corrupt_label, gb::target_kind::logit);
      const auto path = gb::path_patching(model, c.clean, c.corrupt, metric, {.exec = exec});
      direct += (1 - path.restored(order[0].second / H, order[0].second % H)) / static_cast<double>(pairs.size());
    }
    std::printf("\nPath patching, top head -> logits directly: it carries %.3f of the corruption's effect by its "
                "direct path (mean over pairs)\n",
                direct);
    std::printf("\nAblation check: accuracy on the clean reviews of the family and on plain reviews (first 300)\n\n");
    std::vector<gb::token_sequence> plain, reference;
    std::vector<gb::token_id> plain_label;
    for (const auto& r : reviews) {
      if (reference.size() < 200) reference.push_back(r.tokens);
      if (r.plain() && plain.size() < 300) {
        plain.push_back(r.tokens);
        plain_label.push_back(r.true_label);
      }
    }
    std::printf("| ablated | kind | %s accuracy | plain accuracy |\n|---|---|---|---|\n", name.c_str());
    for (const std::size_t k : {std::size_t{0}, std::size_t{1}, std::size_t{2}}) {
      for (const auto kind : {gb::ablation_kind::zero, gb::ablation_kind::mean}) {
        if (k == 0 && kind == gb::ablation_kind::mean) continue;
        const std::size_t l = order[k == 0 ? 0 : k - 1].second / H, h = order[k == 0 ? 0 : k - 1].second % H;
        // the head's mean output over every token of the reference reviews
        xt::xtensor<float, 1> mean = xt::zeros<float>(std::array<std::size_t, 1>{model.width()});
        if (kind == gb::ablation_kind::mean) {
          std::size_t count = 0;
          for (const auto& seq : reference) {
            const auto cache = model.run_with_cache(seq);
            for (std::size_t t = 0; t < seq.size(); ++t) mean += xt::view(cache.heads, l, h, t);
            count += seq.size();
          }
          mean /= static_cast<float>(count);
        }
        auto accuracy = [&](const std::vector<gb::token_sequence>& seqs, const std::vector<gb::token_id>& labels) {
          std::size_t right = 0;
          for (std::size_t i = 0; i < seqs.size(); ++i) {
            const std::vector<std::size_t> last = {seqs[i].size() - 1};
            gb::tensor2 z;
            if (k == 0) {
              z = model.logits_at(seqs[i], last);
            } else {
              gb::component_patch p{gb::component_site::head, l, h, {}, gb::tensor2({seqs[i].size(), model.width()}), false};
              for (std::size_t t = 0; t < seqs[i].size(); ++t) xt::view(p.values, t) = mean;
              z = model.logits_with_patches(seqs[i], std::span(&p, 1), last);
            }
            right += predicted(z) == labels[i] ? 1 : 0;
          }
          return static_cast<double>(right) / static_cast<double>(seqs.size());
        };
        std::vector<gb::token_sequence> fam;
        std::vector<gb::token_id> fam_label;
        for (const auto& c : pairs) {
          fam.push_back(c.clean);
          fam_label.push_back(c.clean_label);
        }
        std::printf("| %s | %s | %.3f | %.3f |\n", k == 0 ? "nothing" : fmt::format("L{}H{}", l, h).c_str(),
                    k == 0 ? "-" : std::string(gb::to_string(kind)).c_str(), accuracy(fam, fam_label),
                    accuracy(plain, plain_label));
      }
    }
    std::printf("\n");
  }
  return 0;
}
