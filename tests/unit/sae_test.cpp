// Tests of sparse autoencoders (representations/sae.hpp): the loss gradient of both product paths
// against central finite differences in double; recovery of a planted sparse dictionary;
// bit-identical training under a seed; the resampling of dead features; the SAE file; the
// fraction of loss recovered on a tiny reference GPT-2 (exact reconstruction 1, zeros 0); top
// contexts, logit effects and property matches against direct computations; the error messages.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <glassbox/core/random.hpp>
#include <glassbox/io/sae_file.hpp>
#include <glassbox/representations/sae.hpp>
#include <numeric>
#include <vector>

#include "glassbox/models/gpt2.hpp"
#include "test_support.hpp"

namespace {

using namespace glassbox;
using glassbox::test::what_contains;

/// Activations x = sum_k a_k D_k + noise with a planted unit-norm dictionary D [m, d]: each
/// feature is active with probability p, with magnitude uniform in [0.5, 1.5].
struct planted_data {
  tensor2 dictionary;  // [m, d]
  tensor2 x;           // [N, d]
};

planted_data planted(std::size_t m, std::size_t d, std::size_t rows, double p, std::uint64_t seed) {
  rng g(seed);
  planted_data out;
  out.dictionary = tensor2::from_shape({m, d});
  for (std::size_t k = 0; k < m; ++k) {
    double norm = 0;
    for (std::size_t c = 0; c < d; ++c) {
      out.dictionary(k, c) = static_cast<float>(g.normal());
      norm += static_cast<double>(out.dictionary(k, c)) * out.dictionary(k, c);
    }
    for (std::size_t c = 0; c < d; ++c) out.dictionary(k, c) = static_cast<float>(out.dictionary(k, c) / std::sqrt(norm));
  }
  out.x = xt::zeros<float>({rows, d});
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t k = 0; k < m; ++k)
      if (g.bernoulli(p)) {
        const double a = g.uniform(0.5, 1.5);
        for (std::size_t c = 0; c < d; ++c) out.x(r, c) += static_cast<float>(a * out.dictionary(k, c));
      }
  return out;
}

double cosine(const tensor2& a, std::size_t i, const tensor2& b, std::size_t j) {
  double dot = 0, na = 0, nb = 0;
  for (std::size_t c = 0; c < a.shape(1); ++c) {
    dot += static_cast<double>(a(i, c)) * b(j, c);
    na += static_cast<double>(a(i, c)) * a(i, c);
    nb += static_cast<double>(b(j, c)) * b(j, c);
  }
  return dot / std::sqrt(na * nb);
}

detail::sae_parameters<double> random_parameters(Eigen::Index d, Eigen::Index n, std::uint64_t seed) {
  rng g(seed);
  detail::sae_parameters<double> p;
  p.zeros(d, n);
  for (Eigen::Index j = 0; j < n; ++j)
    for (Eigen::Index c = 0; c < d; ++c) {
      p.W_e(j, c) = g.normal();
      p.W_dec(j, c) = g.normal();
    }
  detail::sae_normalise_rows(p.W_dec);
  for (Eigen::Index j = 0; j < n; ++j) p.b_e[j] = g.normal(0, 0.3);
  for (Eigen::Index c = 0; c < d; ++c) p.b_d[c] = g.normal(0, 0.3);
  return p;
}

/// A tiny reference GPT-2.
models::gpt2 tiny_gpt2(std::uint64_t seed) {
  models::gpt2_config c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.n_positions = 16;
  c.vocab_size = 19;
  return models::gpt2::random(c, seed);
}

/// An SAE with n = 2d features that reconstructs every x exactly: f = (ReLU(x), ReLU(-x)),
/// x_hat = ReLU(x) - ReLU(-x) (each term a product by 1 or 0, so exact in float).
sparse_autoencoder exact_sae(std::size_t d) {
  sparse_autoencoder s;
  s.W_enc = xt::zeros<float>({d, 2 * d});
  s.W_dec = xt::zeros<float>({2 * d, d});
  s.b_enc = xt::zeros<float>({2 * d});
  s.b_dec = xt::zeros<float>({d});
  for (std::size_t c = 0; c < d; ++c) {
    s.W_enc(c, c) = 1;
    s.W_enc(c, d + c) = -1;
    s.W_dec(c, c) = 1;
    s.W_dec(d + c, c) = -1;
  }
  return s;
}

}  // namespace

TEST_CASE("sae: the loss gradient matches central finite differences in double, on both product paths", "[sae]") {
  const Eigen::Index d = 5, n = 7, batch = 6;
  const double l1 = 0.3;
  auto p = random_parameters(d, n, 11);
  rng g(12);
  detail::sae_matrix<double> x(batch, d);
  for (Eigen::Index b = 0; b < batch; ++b)
    for (Eigen::Index c = 0; c < d; ++c) x(b, c) = g.normal();
  detail::sae_workspace<double> ws;
  detail::sae_loss_gradient<double>(p, x, l1, ws, nullptr, false);
  // Away from the ReLU's kink, the loss is smooth in every parameter within the step below.
  REQUIRE(ws.pre.cwiseAbs().minCoeff() > 1e-3);
  REQUIRE(ws.active.row_feature.size() > 0);
  REQUIRE(ws.active.row_feature.size() < static_cast<std::size_t>(batch * n));

  const auto loss = [&](const detail::sae_parameters<double>& q) {
    detail::sae_workspace<double> w;
    return detail::sae_loss_gradient<double>(q, x, l1, w, nullptr, false).loss;
  };
  for (const bool sparse : {false, true}) {
    detail::sae_parameters<double> grad;
    detail::sae_loss_gradient<double>(p, x, l1, ws, &grad, sparse);
    const double h = 1e-6;
    // Central differences have error O(h^2) times the third derivative (the loss is quadratic in
    // every parameter group between kinks) plus rounding ~1e-16 / h: 1e-7 absolute is ample.
    const auto check = [&](auto member, const char* name) {
      auto& target = p.*member;
      const auto& analytic = grad.*member;
      for (Eigen::Index i = 0; i < target.size(); ++i) {
        const double saved = target.data()[i];
        target.data()[i] = saved + h;
        const double up = loss(p);
        target.data()[i] = saved - h;
        const double down = loss(p);
        target.data()[i] = saved;
        INFO(name << " entry " << i << (sparse ? " sparse" : " dense"));
        CHECK(analytic.data()[i] == Approx((up - down) / (2 * h)).margin(1e-7));
      }
    };
    check(&detail::sae_parameters<double>::W_e, "W_e");
    check(&detail::sae_parameters<double>::W_dec, "W_dec");
    check(&detail::sae_parameters<double>::b_e, "b_e");
    check(&detail::sae_parameters<double>::b_d, "b_d");
  }
}

TEST_CASE("sae: the decoder step keeps unit rows and removes the gradient along them", "[sae]") {
  auto p = random_parameters(4, 6, 3);
  detail::sae_matrix<double> g = detail::sae_matrix<double>::Random(6, 4);
  detail::sae_remove_parallel_gradient(p.W_dec, g);
  for (Eigen::Index j = 0; j < 6; ++j) CHECK(std::abs(g.row(j).dot(p.W_dec.row(j))) < 1e-12);
  p.W_dec *= 3.0;
  detail::sae_normalise_rows(p.W_dec);
  for (Eigen::Index j = 0; j < 6; ++j) CHECK(p.W_dec.row(j).norm() == Approx(1.0).epsilon(1e-14));
}

TEST_CASE("sae: recovers a planted sparse dictionary", "[sae]") {
  // 24 planted unit directions in d = 16 (overcomplete), each active with probability 0.06 (about
  // 1.4 per row), 16384 rows; an SAE with 48 features.
  const std::size_t m = 24, d = 16;
  const planted_data data = planted(m, d, 16384, 0.06, 7);
  sae_options o;
  o.features = 48;
  o.l1 = 0.3;
  o.learning_rate = 1e-2;
  o.batch_size = 256;
  o.epochs = 20;
  o.seed = 1;
  o.resampling.every = 500;
  const auto trained = train_sae(data.x, o);
  const auto& sae = trained.sae;
  REQUIRE(sae.feature_count() == 48);
  REQUIRE(sae.input_width() == d);
  std::size_t recovered = 0;
  for (std::size_t k = 0; k < m; ++k) {
    double best = -1;
    for (std::size_t j = 0; j < sae.feature_count(); ++j) best = std::max(best, cosine(data.dictionary, k, sae.W_dec, j));
    recovered += best > 0.9 ? 1 : 0;
  }
  INFO("recovered " << recovered << " of " << m);
  CHECK(static_cast<double>(recovered) >= 0.8 * static_cast<double>(m));
  // The decoder rows have unit norm after training.
  for (std::size_t j = 0; j < sae.feature_count(); ++j) {
    double norm = 0;
    for (std::size_t c = 0; c < d; ++c) norm += static_cast<double>(sae.W_dec(j, c)) * sae.W_dec(j, c);
    CHECK(std::sqrt(norm) == Approx(1.0).epsilon(1e-5));
  }
  // Metrics against their definitions, computed here from the reconstruction.
  const sae_metrics metrics = evaluate_sae(sae, data.x);
  const tensor2 f = sae_encode(sae, data.x);
  const tensor2 xh = sae_reconstruct(sae, data.x);
  double err = 0, var = 0, active = 0;
  std::vector<double> mean(d, 0.0);
  for (std::size_t r = 0; r < data.x.shape(0); ++r)
    for (std::size_t c = 0; c < d; ++c) mean[c] += data.x(r, c) / static_cast<double>(data.x.shape(0));
  for (std::size_t r = 0; r < data.x.shape(0); ++r) {
    for (std::size_t c = 0; c < d; ++c) {
      err += std::pow(static_cast<double>(data.x(r, c)) - xh(r, c), 2);
      var += std::pow(static_cast<double>(data.x(r, c)) - mean[c], 2);
    }
    for (std::size_t j = 0; j < sae.feature_count(); ++j) active += f(r, j) > 0 ? 1 : 0;
  }
  CHECK(metrics.mse == Approx(err / static_cast<double>(data.x.size())).epsilon(1e-9));
  CHECK(metrics.explained_variance == Approx(1 - err / var).epsilon(1e-9));
  CHECK(metrics.l0 == Approx(active / static_cast<double>(data.x.shape(0))).epsilon(1e-12));
  CHECK(metrics.explained_variance > 0.9);
  // About 1.4 planted features per row: a sparse code, far below n.
  CHECK(metrics.l0 < 6);
  CHECK(trained.history.back().step == trained.steps);
}

TEST_CASE("sae: training is bit-identical under a seed, and the seed matters", "[sae]") {
  const planted_data data = planted(12, 8, 2048, 0.1, 5);
  sae_options o;
  o.features = 32;
  o.l1 = 0.05;
  o.batch_size = 128;
  o.steps = 120;
  o.seed = 9;
  o.resampling.every = 40;
  o.resampling.window = 256;
  o.sparse_below = 0.3;  // both product paths run
  const auto a = train_sae(data.x, o);
  const auto b = train_sae(data.x, o);
  const auto same = [](const auto& u, const auto& v) {
    return u.size() == v.size() && std::memcmp(u.data(), v.data(), u.size() * sizeof(float)) == 0;
  };
  CHECK(same(a.sae.W_enc, b.sae.W_enc));
  CHECK(same(a.sae.W_dec, b.sae.W_dec));
  CHECK(same(a.sae.b_enc, b.sae.b_enc));
  CHECK(same(a.sae.b_dec, b.sae.b_dec));
  CHECK(a.resampled == b.resampled);
  o.seed = 10;
  const auto c = train_sae(data.x, o);
  CHECK_FALSE(same(a.sae.W_dec, c.sae.W_dec));

  // Training from an SAE starts from its parameters: one step moves each decoder entry by at
  // most about the learning rate (Adam's first step is lr * sign(g)), then rows are renormalised.
  sae_options more = o;
  more.initial = &a.sae;
  more.features = 5;  // ignored: the initial SAE's n
  more.steps = 1;
  more.learning_rate = 1e-4;
  more.warmup_steps = 1;
  const auto d = train_sae(data.x, more);
  REQUIRE(d.sae.feature_count() == a.sae.feature_count());
  double moved = 0;
  for (std::size_t i = 0; i < d.sae.W_dec.size(); ++i)
    moved = std::max(moved, static_cast<double>(std::abs(d.sae.W_dec.data()[i] - a.sae.W_dec.data()[i])));
  CHECK(moved > 0);
  CHECK(moved < 5e-4);
  const tensor2 wider = xt::zeros<float>({16, 9});
  REQUIRE_THROWS_MATCHES(train_sae(wider, more), shape_error,
                         what_contains("glassbox::train_sae: initial must read 9 columns (the activations' d), got 8"));
}

TEST_CASE("sae: resampling revives dead features from the worst-reconstructed inputs", "[sae]") {
  // Rows: 63 copies of e_0 (reconstructed exactly by feature 0) and one row far off (5 e_1 + 3 e_2).
  const Eigen::Index d = 4, n = 6;
  tensor2 x = xt::zeros<float>({64, 4});
  for (std::size_t r = 0; r < 63; ++r) x(r, 0) = 1;
  x(63, 1) = 5;
  x(63, 2) = 3;
  detail::sae_parameters<float> p;
  p.zeros(d, n);
  p.W_e(0, 0) = 1;
  p.W_dec(0, 0) = 1;
  for (Eigen::Index j = 1; j < n; ++j) {  // features 1..5: dead (a large negative bias)
    p.W_e(j, j % d) = 2;
    p.W_dec(j, j % d) = 1;
    p.b_e[j] = -100;
  }
  detail::sae_adam_state<float> adam;
  adam.m.zeros(d, n);
  adam.v.zeros(d, n);
  adam.m.W_e.setConstant(0.5f);
  adam.v.W_dec.setConstant(0.5f);
  adam.m.b_e.setConstant(0.5f);
  const auto before = p;
  detail::sae_workspace<float> ws;
  rng g(4);
  const std::vector<Eigen::Index> dead{2, 4};
  detail::sae_resample<float>(p, adam, dead, x, sae_resampling{.pool = 64}, g, ws);
  // Only row 63 has a reconstruction error, so both dead features take its direction.
  Eigen::RowVectorXf v(4);
  v << 0, 5, 3, 0;
  v /= v.norm();
  for (const auto j : dead) {
    CHECK((p.W_dec.row(j) - v).norm() < 1e-6);
    // Encoder: the same direction with 0.2 times the mean encoder norm of the live features (1, 2, 2, 2).
    CHECK(p.W_e.row(j).norm() == Approx(0.2 * 7.0 / 4.0).epsilon(1e-6));
    CHECK(p.W_e.row(j).dot(v) == Approx(0.2 * 7.0 / 4.0).epsilon(1e-6));
    CHECK(p.b_e[j] == 0);
    CHECK(adam.m.W_e.row(j).isZero());
    CHECK(adam.v.W_dec.row(j).isZero());
    CHECK(adam.m.b_e[j] == 0);
  }
  // The revived features fire on the row they came from; the others are untouched.
  detail::sae_matrix<float> row(1, 4);
  row << 0, 5, 3, 0;
  detail::sae_loss_gradient<float>(p, row, 0.0f, ws, nullptr, false);
  for (const auto j : dead) CHECK(ws.pre(0, j) > 0);
  for (const Eigen::Index j : {0, 1, 3, 5}) {
    CHECK(p.W_e.row(j) == before.W_e.row(j));
    CHECK(p.W_dec.row(j) == before.W_dec.row(j));
    CHECK(adam.m.W_e(j, 0) == 0.5f);
  }

  // In training: a large L1 kills features; resampling brings them back (recorded per resampling).
  const planted_data data = planted(8, 8, 4096, 0.1, 6);
  sae_options o;
  o.features = 64;
  o.l1 = 0.5;
  o.learning_rate = 1e-2;
  o.batch_size = 128;
  o.steps = 300;
  o.resampling.every = 100;
  o.resampling.window = 1024;
  const auto trained = train_sae(data.x, o);
  REQUIRE(trained.resampled.size() == 2);
  CHECK(trained.resampled[0] + trained.resampled[1] > 0);
}

TEST_CASE("sae: the SAE file round-trips in SAELens' layout", "[sae]") {
  const planted_data data = planted(6, 5, 512, 0.2, 8);
  sae_options o;
  o.features = 10;
  o.steps = 20;
  o.layer = 3;
  o.l1 = 0.125;
  o.model_name = "tiny";
  const auto trained = train_sae(data.x, o);
  const auto file = std::filesystem::path(GLASSBOX_TEST_DATA_DIR) / "sae_round_trip.safetensors";
  std::filesystem::create_directories(file.parent_path());
  io::write_sae_file(file, trained.sae);
  const io::safetensors_reader raw(file);
  CHECK(raw.entry("W_enc").shape == std::vector<std::size_t>{5, 10});
  CHECK(raw.entry("W_dec").shape == std::vector<std::size_t>{10, 5});
  CHECK(raw.metadata().at("format") == "glassbox.sae");
  const sparse_autoencoder back = io::read_sae_file(file);
  CHECK(back.W_enc == trained.sae.W_enc);
  CHECK(back.b_enc == trained.sae.b_enc);
  CHECK(back.W_dec == trained.sae.W_dec);
  CHECK(back.b_dec == trained.sae.b_dec);
  CHECK(back.layer == 3);
  CHECK(back.l1 == 0.125);
  CHECK(back.model == "tiny");
  // A file without the tensors is refused with its name.
  const auto other = file.parent_path() / "sae_not_an_sae.safetensors";
  std::vector<float> w(4, 1.0f);
  const io::tensor_to_write t{"w", io::dtype::f32, {2, 2}, std::span<const float>(w)};
  io::write_safetensors(other, std::span(&t, 1));
  REQUIRE_THROWS_MATCHES(io::read_sae_file(other), io_error, what_contains("no tensor named 'W_enc'"));
}

TEST_CASE("sae: the fraction of loss recovered is 1 for an exact reconstruction and 0 for zeros", "[sae]") {
  const models::gpt2 model = tiny_gpt2(21);
  std::vector<training_example> data;
  rng g(22);
  for (int i = 0; i < 4; ++i) {
    token_sequence t;
    for (int k = 0; k < 6; ++k) t.push_back(static_cast<token_id>(g.below(19)));
    data.push_back(training_example::next_token(t));
  }
  const sparse_autoencoder exact = exact_sae(8);
  sparse_autoencoder zero = exact;
  zero.b_enc.fill(-1e30f);  // no feature ever fires, and b_dec = 0: x_hat = 0
  for (const std::size_t layer : {0, 1, 2}) {
    const auto r = sae_loss_recovered(model, exact, std::span<const training_example>(data), layer);
    // Independent clean loss: the model's own logits, cross-entropy in double.
    double clean = 0;
    std::size_t scored = 0;
    for (const auto& e : data) {
      const tensor2 z = model.logits(e.tokens);
      for (std::size_t i = 0; i < e.labels.size(); ++i) {
        if (e.labels[i] == training_example::ignore_label) continue;
        double top = -1e300, sum = 0;
        for (std::size_t v = 0; v < 19; ++v) top = std::max(top, static_cast<double>(z(i, v)));
        for (std::size_t v = 0; v < 19; ++v) sum += std::exp(z(i, v) - top);
        clean += top + std::log(sum) - z(i, static_cast<std::size_t>(e.labels[i]));
        ++scored;
      }
    }
    CHECK(r.scored_rows == scored);
    // logits_from_hidden with the unedited hidden state agrees with logits to float rounding.
    CHECK(r.clean_loss == Approx(clean / static_cast<double>(scored)).epsilon(1e-5));
    CHECK(r.sae_loss == r.clean_loss);
    CHECK(r.fraction_recovered == 1.0);
    const auto z = sae_loss_recovered(model, zero, std::span<const training_example>(data), layer);
    CHECK(z.sae_loss == z.zero_loss);
    CHECK(z.fraction_recovered == 0.0);
  }
  REQUIRE_THROWS_MATCHES(sae_loss_recovered(model, exact, std::span<const training_example>(data), 3), shape_error,
                         what_contains("glassbox::sae_loss_recovered: layer must be < 3"));
}

TEST_CASE("sae: top contexts, logit effects and property matches against direct computations", "[sae]") {
  const sparse_autoencoder sae = exact_sae(8);
  rng g(31);
  tensor2 x = tensor2::from_shape({40, 8});
  for (auto& v : x) v = static_cast<float>(g.normal());
  std::vector<std::size_t> seq(40), pos(40);
  for (std::size_t r = 0; r < 40; ++r) seq[r] = r / 10, pos[r] = r % 10;
  const auto top = sae_top_contexts(sae, x, 3, seq, pos);
  REQUIRE(top.size() == 16);
  for (std::size_t j = 0; j < 16; ++j) {
    // Feature j < 8 is ReLU(x_j), feature 8 + c is ReLU(-x_c): its top rows by direct sorting.
    std::vector<std::pair<double, std::size_t>> direct;
    for (std::size_t r = 0; r < 40; ++r) {
      const double a = j < 8 ? x(r, j) : -x(r, j - 8);
      if (a > 0) direct.push_back({-a, r});
    }
    std::sort(direct.begin(), direct.end());
    REQUIRE(top[j].size() == std::min<std::size_t>(3, direct.size()));
    for (std::size_t i = 0; i < top[j].size(); ++i) {
      CHECK(top[j][i].row == direct[i].second);
      CHECK(top[j][i].activation == Approx(-direct[i].first));
      CHECK(top[j][i].sequence == direct[i].second / 10);
      CHECK(top[j][i].position == direct[i].second % 10);
    }
  }

  const models::gpt2 model = tiny_gpt2(32);
  const std::vector<std::size_t> chosen{1, 9};
  const auto effects = sae_logit_effects(model, sae, 4, chosen);
  REQUIRE(effects.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    tensor2 h = xt::zeros<float>({std::size_t{1}, std::size_t{8}});
    for (std::size_t c = 0; c < 8; ++c) h(0, c) = sae.W_dec(chosen[i], c);
    const tensor2 z = model.logits_from_hidden(token_sequence{0}, 2, h);
    float best = -1e30f, worst = 1e30f;
    for (std::size_t v = 0; v < 19; ++v) best = std::max(best, z(0, v)), worst = std::min(worst, z(0, v));
    CHECK(effects[i].top.size() == 4);
    CHECK(effects[i].top[0].logit == Approx(best).margin(1e-5));
    CHECK(effects[i].bottom[0].logit == Approx(worst).margin(1e-5));
    CHECK(effects[i].top[0].logit >= effects[i].top[1].logit);
  }

  // Property "x_0 > 0" is exactly feature 0's activity; "x_0 > 1" is a subset of it.
  std::vector<sae_row_property> props(2);
  props[0].name = "x0 positive";
  props[1].name = "x0 above 1";
  std::size_t positive = 0, above = 0;
  for (std::size_t r = 0; r < 40; ++r) {
    props[0].truth.push_back(x(r, 0) > 0);
    props[1].truth.push_back(x(r, 0) > 1);
    positive += x(r, 0) > 0;
    above += x(r, 0) > 1;
  }
  REQUIRE(above > 0);
  REQUIRE(above < positive);
  const auto s = sae_match_properties(sae, x, props, 0.99);
  CHECK(s.best_by_property[0].feature == 0);
  CHECK(s.best_by_property[0].f1 == 1.0);
  CHECK(s.best_by_property[1].feature == 0);
  CHECK(s.best_by_property[1].precision == Approx(static_cast<double>(above) / static_cast<double>(positive)));
  CHECK(s.best_by_property[1].recall == 1.0);
  CHECK(s.best_by_feature[0].property == 0);
  CHECK(s.matched == 1);
  CHECK(s.scored == 2);
  CHECK(s.matched_fraction == 0.5);
}

TEST_CASE("sae: bad input fails with a message naming the argument", "[sae]") {
  tensor2 x = xt::ones<float>({4, 3});
  REQUIRE_THROWS_MATCHES(train_sae(x, {.l1 = -1}), error, what_contains("glassbox::train_sae: l1 must be finite and >= 0, got -1"));
  REQUIRE_THROWS_MATCHES(train_sae(x, {.batch_size = 0}), error, what_contains("batch_size must be >= 1, got 0"));
  x(2, 1) = std::nanf("");
  REQUIRE_THROWS_MATCHES(train_sae(x), error, what_contains("activations must be finite, got nan at row 2"));
  const sparse_autoencoder sae = exact_sae(3);
  REQUIRE_THROWS_MATCHES(sae_encode(sae, tensor2(xt::ones<float>({2, 4}))), shape_error,
                         what_contains("glassbox::sae_encode: activations must have 3 columns (d), got 4"));
}
