// Not part of the library (glassbox is header-only): K-FAC / EK-FAC (influence/kfac.hpp) on the
// reference GPT-2 in float, compiled once for the repository's own programs. CMake's object library
// `glassbox_gpt2_float_kfac` is linked by the programs that fit factors or score with them on the
// model (the influence and robustness tests, the command line, examples/influence_reviews.cpp), and
// gives them GLASSBOX_EXTERN_GPT2_KFAC, so that none of their other translation units compiles these
// functions again (docs/building.md, "Compile-time advice"). The model's own members come from
// glassbox_gpt2_float (GLASSBOX_EXTERN_GPT2).
#include "glassbox/influence/kfac.hpp"
#include "glassbox/models/gpt2.hpp"

namespace glassbox {
using models::gpt2;
template kfac_factors fit_kfac_factors(const gpt2&, std::span<const training_example>, const kfac_fit_options&);
template kfac_covariance_sums kfac_covariance_pass(const gpt2&, std::span<const training_example>, std::size_t,
                                                   std::span<const kfac_layer_factors>, const kfac_fit_options&);
template kfac_lambda_sums kfac_lambda_pass(const gpt2&, std::span<const training_example>, std::size_t,
                                           const kfac_factors&, const kfac_fit_options&);
template kfac_query_batch kfac_prepare_queries(const gpt2&, const kfac_factors&, const kfac_preconditioner&,
                                               std::span<const measurement>, std::size_t, const execution_options&);
template tensor2 kfac_influence_scores(const gpt2&, const kfac_factors&, const kfac_query_batch&,
                                       std::span<const training_example>, std::size_t, std::size_t,
                                       const kfac_score_options&);
template influence_result kfac_influence(const gpt2&, const kfac_factors&, std::span<const measurement>,
                                         std::span<const training_example>, const kfac_score_options&);
template std::vector<double> kfac_self_influence_scores(const gpt2&, const kfac_factors&, const kfac_preconditioner&,
                                                        std::span<const training_example>, std::size_t, std::size_t,
                                                        const kfac_score_options&);
template self_influence_result kfac_self_influence(const gpt2&, const kfac_factors&, std::span<const training_example>,
                                                   const kfac_score_options&);
template token_influence_result kfac_token_influence(const gpt2&, const kfac_factors&, std::span<const measurement>,
                                                     const training_example&, std::size_t, const kfac_score_options&);
}  // namespace glassbox
