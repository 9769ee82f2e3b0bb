// K-FAC / EK-FAC over MPI (parallel/mpi.hpp), run by CTest on two ranks: fitting, pairwise scores
// and self-influence sharded across the ranks equal the single-process run (computed on every rank
// from the same data), a failure on one rank stops every rank with its message, and score shards
// written by the ranks are reused by a later single-process run.
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "glassbox/core/random.hpp"
#include "glassbox/influence/kfac.hpp"
#include "glassbox/io/influence_factors.hpp"
#include "glassbox/models/gpt2.hpp"
#include "glassbox/parallel/mpi.hpp"

namespace {

int failures = 0;
int rank = 0;

void check(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "rank %d: FAILED: %s\n", rank, what.c_str());
  } else if (rank == 0) {
    std::printf("ok: %s\n", what.c_str());
  }
}

glassbox::models::gpt2 tiny_gpt2() {
  glassbox::models::gpt2_config c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.n_positions = 16;
  c.vocab_size = 13;
  const auto table = glassbox::models::gpt2_parameter_table(c);
  std::vector<float> p(table.back().offset + table.back().size);
  glassbox::rng g(3);
  for (const auto& t : table) {
    const bool ln_weight = t.name.find("ln_") != std::string::npos && t.name.ends_with(".weight");
    for (std::size_t i = 0; i < t.size; ++i)
      p[t.offset + i] = static_cast<float>(ln_weight ? 1.0 + g.normal(0, 0.2) : g.normal(0, 0.4));
  }
  return glassbox::models::gpt2(c, p);
}

std::vector<glassbox::training_example> examples(std::size_t n, std::uint64_t seed) {
  glassbox::rng g(seed);
  std::vector<glassbox::training_example> out;
  for (std::size_t i = 0; i < n; ++i) {
    glassbox::token_sequence t(2 + g.below(6));
    for (auto& x : t) x = static_cast<glassbox::token_id>(g.below(13));
    out.push_back(i % 3 == 0 ? glassbox::training_example::classification(t, static_cast<glassbox::token_id>(g.below(13)))
                             : glassbox::training_example::next_token(t));
  }
  return out;
}

double relative_difference(const glassbox::tensor2& a, const glassbox::tensor2& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (double(a.data()[i]) - b.data()[i]) * (double(a.data()[i]) - b.data()[i]);
    den += double(b.data()[i]) * b.data()[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

// The indices of per-query rankings.
std::vector<std::vector<std::size_t>> indices(const std::vector<std::vector<glassbox::influence_entry>>& lists) {
  std::vector<std::vector<std::size_t>> out;
  for (const auto& l : lists) {
    out.emplace_back();
    for (const auto& e : l) out.back().push_back(e.index);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  rank = glassbox::parallel::mpi_rank(MPI_COMM_WORLD);
  const int size = glassbox::parallel::mpi_size(MPI_COMM_WORLD);
  try {
    check(size == 2, "runs on two ranks");
    const auto model = tiny_gpt2();
    const auto train = examples(29, 5);
    const glassbox::kfac_fit_options fit{.seed = 4, .execution = {.batch_size = 4, .threads = 1}};

    // Fitting: every rank ends with the all-reduced factors, equal to the single-process fit up to the
    // order of the sums (compare covariances, Lambda and the preconditioner's action).
    const auto parallel = glassbox::parallel::mpi_fit_kfac_factors(MPI_COMM_WORLD, model, train, fit);
    const auto single = glassbox::fit_kfac_factors(model, train, fit);
    double worst = 0;
    for (std::size_t l = 0; l < single.layers.size(); ++l) {
      worst = std::max(worst, relative_difference(parallel.layers[l].activation_covariance, single.layers[l].activation_covariance));
      worst = std::max(worst, relative_difference(parallel.layers[l].gradient_covariance, single.layers[l].gradient_covariance));
      worst = std::max(worst, relative_difference(parallel.layers[l].lambda, single.layers[l].lambda));
    }
    check(worst < 1e-5, "MPI factors equal the single-process factors to float rounding (" + std::to_string(worst) + ")");
    check(parallel.covariance_examples == train.size() && parallel.lambda_examples == train.size(),
          "the passes counted every example once");

    // Scoring: the same factors give the same scores sharded or not, to float rounding (the model's
    // passes may round differently with the alignment of their buffers); rank 0 has the matrix.
    const std::vector<glassbox::measurement> q{glassbox::measurement::loss(train[0]),
                                               glassbox::measurement::completion({3, 4}, {5})};
    const glassbox::kfac_score_options so{.common = {.top_k = 4}, .shard_size = 4};
    const auto r = glassbox::parallel::mpi_kfac_influence(MPI_COMM_WORLD, model, single, q, train, so);
    const auto reference = glassbox::kfac_influence(model, single, q, train, so);
    if (rank == 0) {
      check(r.scores.shape(0) == 2 && r.scores.shape(1) == train.size() &&
                relative_difference(r.scores, reference.scores) < 1e-5,
            "MPI pairwise scores equal the single-process scores");
      check(indices(r.top) == indices(reference.top) && indices(r.bottom) == indices(reference.bottom),
            "rank 0 ranks the top-k");
    } else {
      check(r.scores.size() == 0, "other ranks return no score matrix");
    }
    const auto s = glassbox::parallel::mpi_kfac_self_influence(MPI_COMM_WORLD, model, single, train, so);
    const auto sref = glassbox::kfac_self_influence(model, single, train, so);
    if (rank == 0) {
      double worst_self = 0, largest = 1e-30;
      for (std::size_t n = 0; n < sref.scores.size() && n < s.scores.size(); ++n) {
        worst_self = std::max(worst_self, std::abs(s.scores[n] - sref.scores[n]));
        largest = std::max(largest, std::abs(sref.scores[n]));
      }
      check(s.scores.size() == sref.scores.size() && worst_self < 1e-5 * largest, "MPI self-influence equals the single-process one");
    }
    const auto rp = glassbox::parallel::mpi_kfac_influence(MPI_COMM_WORLD, model, parallel, q, train, so);
    if (rank == 0) check(relative_difference(rp.scores, reference.scores) < 1e-4, "scores with the MPI factors agree");

    // Shards written by two ranks are all reused by a later single-process run.
    const auto dir = std::filesystem::path(GLASSBOX_TEST_DATA_DIR) / "kfac_mpi_shards";
    if (rank == 0) std::filesystem::remove_all(dir);
    MPI_Barrier(MPI_COMM_WORLD);
    glassbox::kfac_score_options disk = so;
    disk.shards = glassbox::io::kfac_shard_directory(dir, glassbox::io::kfac_score_run_id(single, q, train, disk), q.size());
    (void)glassbox::parallel::mpi_kfac_influence(MPI_COMM_WORLD, model, single, q, train, disk);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
      std::size_t loaded = 0;
      auto load = disk.shards.load;
      disk.shards.load = [&](std::size_t b, std::size_t e, std::span<float> out) {
        const bool ok = load(b, e, out);
        loaded += ok;
        return ok;
      };
      disk.shards.save = {};
      const auto resumed = glassbox::kfac_influence(model, single, q, train, disk);
      check(loaded == 8 && relative_difference(resumed.scores, reference.scores) < 1e-5,
            "a single-process run reuses the 8 shards the ranks wrote");
    }

    // A failure on rank 1 (an example with no scored row in its share) stops both ranks.
    auto broken = train;
    broken[25].labels.assign(broken[25].labels.size(), glassbox::training_example::ignore_label);
    try {
      (void)glassbox::parallel::mpi_fit_kfac_factors(MPI_COMM_WORLD, model, std::span(broken), fit);
      check(false, "a failing rank stops every rank");
    } catch (const glassbox::error& e) {
      const std::string what = e.what();
      const bool named = rank == 1 ? what.find("training example 25 must have at least one scored row") != std::string::npos
                                   : what.find("rank 1 failed: glassbox::kfac_covariance: training example 25") !=
                                         std::string::npos;
      check(named, std::string("a failing rank stops every rank with its message: ") + what);
    }
  } catch (const std::exception& e) {
    ++failures;
    std::fprintf(stderr, "rank %d: unexpected exception: %s\n", rank, e.what());
  }
  int total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) std::printf("%s (%d failures)\n", total == 0 ? "all passed" : "FAILED", total);
  MPI_Finalize();
  return total == 0 ? 0 : 1;
}
