// Not part of the library (glassbox is header-only): the probe solvers, probe_layers on an in-memory
// set and the sparse autoencoder's training (probing/, representations/sae.hpp), compiled once for the
// repository's own programs. CMake's object library `glassbox_probing` is linked by the programs that
// probe layers or train SAEs (the probing, representations and robustness tests, the command line,
// the libtorch test, the examples that include probing or the SAE), and gives them
// GLASSBOX_EXTERN_PROBING, so that none of their other translation units compiles these functions
// again (docs/building.md, "Compile-time advice"). A sanitizer build does not link it: there the
// tests compile what they call themselves (tests/CMakeLists.txt). Nothing here depends on a model.
#include "glassbox/probing/probe.hpp"
#include "glassbox/representations/sae.hpp"

namespace glassbox {
namespace detail {
template logistic_regression_result fit_logistic<void>(float_rows, std::span<const std::int32_t>, std::size_t,
                                                       const logistic_regression_options&, const linear_weights*);
template linear_weights fit_ridge<double>(float_rows, std::span<const double>, const ridge_options&);
template mlp_probe fit_mlp<float>(float_rows, std::span<const std::int32_t>, std::size_t, const mlp_probe_options&,
                                  float_rows, std::span<const std::int32_t>);
template mdl_result online_code<void>(float_rows, std::span<const std::int32_t>, std::size_t, const mdl_options&);
template probe_fit_scores fit_and_score<void>(const tensor2&, const tensor2&, const tensor2&, std::span<const double>,
                                              const probe_split&, label_kind, std::size_t, const probe_options&,
                                              std::uint64_t);
}  // namespace detail
template probe_result probe_layers<void>(const activation_set&, const probe_options&);
template sae_training_result train_sae<void>(const tensor2&, const sae_options&);
template sae_metrics evaluate_sae<void>(const sparse_autoencoder&, const tensor2&, const sae_metric_options&);
}  // namespace glassbox
