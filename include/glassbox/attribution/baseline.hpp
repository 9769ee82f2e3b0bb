// glassbox: what "absent" means for a token. Perturbation and gradient methods share one
// baseline type, so that, e.g., occlusion and integrated gradients can be asked for the same
// reference input.
//
//   pad()         the token is replaced by the model's pad token (model.pad_token())
//   token(id)     the token is replaced by `id` (e.g. an unknown-word id)
//   zero()        its input embedding is replaced by zeros (EmbeddingModel)
//   embedding(v)  its input embedding is replaced by v ([d], the same for every position, or [T, d])
//   removal()     the token is deleted from the sequence (perturbation methods only; changes length)
//
// The default of the perturbation methods (an empty `std::optional<baseline>` in their options)
// resolves per model (detail::default_baseline): the model's pad token when it has one
// (pad_token() returns an id), else the zero embedding when the model is an EmbeddingModel, else
// a glassbox::error that asks for baseline::token(id) or baseline::removal(). Results record the
// baseline that was used. Gradient methods default to zero() (they need an EmbeddingModel anyway).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox {

/// How a baseline makes a token absent.
enum class baseline_kind {
  pad_token,  ///< replaced by the model's pad token
  token,      ///< replaced by a given token id
  zero,       ///< embedding replaced by zeros
  embedding,  ///< embedding replaced by a given vector or matrix
  removal,    ///< token deleted from the sequence
};

/// The stable name of a baseline kind ("pad", "token", "zero", "embedding", "removal").
constexpr std::string_view to_string(baseline_kind kind) {
  switch (kind) {
    case baseline_kind::pad_token: return "pad";
    case baseline_kind::token: return "token";
    case baseline_kind::zero: return "zero";
    case baseline_kind::embedding: return "embedding";
    case baseline_kind::removal: return "removal";
  }
  return "unknown";
}

/// The reference input an attribution compares against: what a token is when it is absent.
class baseline {
 public:
  /// Replace absent tokens by the model's pad token (needs model.pad_token() to return an id).
  template <class = void>
  static baseline pad() { return baseline(baseline_kind::pad_token); }
  /// Replace absent tokens by `id`.
  template <class = void>
  static baseline token(token_id id) {
    baseline b(baseline_kind::token);
    b.token_ = id;
    return b;
  }
  /// Replace absent tokens' input embeddings by zeros.
  template <class = void>
  static baseline zero() { return baseline(baseline_kind::zero); }
  /// Replace absent tokens' input embeddings by `v`: shape [d] (every position) or [T, d] (per position).
  template <class = void>
  static baseline embedding(tensor2 v) {
    baseline b(baseline_kind::embedding);
    b.embedding_ = std::move(v);
    return b;
  }
  /// Delete absent tokens from the sequence (perturbation methods only).
  template <class = void>
  static baseline removal() { return baseline(baseline_kind::removal); }

  /// How absent tokens are made.
  baseline_kind kind() const { return kind_; }
  /// Whether the baseline acts on token ids (pad, token, removal) rather than on embeddings.
  template <class = void>
  bool acts_on_tokens() const {
    return kind_ == baseline_kind::pad_token || kind_ == baseline_kind::token || kind_ == baseline_kind::removal;
  }
  /// The replacement id of a token baseline.
  token_id token_value() const { return token_; }
  /// The replacement embedding(s) of an embedding baseline, [1, d] or [T, d].
  const tensor2& embedding_value() const { return embedding_; }

  /// A short description for results and reports, e.g. "token 1" or "zero".
  template <class = void>
  std::string describe() const {
    if (kind_ == baseline_kind::token) return fmt::format("token {}", token_);
    return std::string(to_string(kind_));
  }

 private:
  template <class = void>
  explicit baseline(baseline_kind kind) : kind_(kind) {}

  baseline_kind kind_;
  token_id token_ = -1;
  tensor2 embedding_;
};

namespace detail {

/// The replacement token id of a pad/token baseline for `model`; fails clearly when there is none.
template <Model M>
token_id baseline_token(const M& model, const baseline& b, std::string_view caller) {
  token_id id = -1;
  if (b.kind() == baseline_kind::token) {
    id = b.token_value();
  } else if (b.kind() == baseline_kind::pad_token) {
    if constexpr (concepts::has_pad_token<M>) {
      const std::optional<token_id> pad = model.pad_token();
      require(pad.has_value(),
              "glassbox::{}: baseline pad needs a pad token, but the model has none; pass baseline::token(id)", caller);
      id = *pad;
    } else {
      fail("glassbox::{}: baseline pad needs a model with `std::optional<token_id> pad_token() const`; pass "
           "baseline::token(id)",
           caller);
    }
  } else {
    fail("glassbox::{}: baseline {} is not a token baseline", caller, to_string(b.kind()));
  }
  require<shape_error>(id >= 0 && static_cast<std::size_t>(id) < model.vocab_size(),
                       "glassbox::{}: baseline token must be in [0, {}), got {}", caller, model.vocab_size(), id);
  return id;
}

/// The default baseline of the perturbation methods for `model`: its pad token when it has one,
/// else the zero embedding when it is an EmbeddingModel; otherwise fails, naming what to pass.
template <Model M>
baseline default_baseline(const M& model, std::string_view caller) {
  if constexpr (concepts::has_pad_token<M>) {
    if (model.pad_token().has_value()) return baseline::pad();
  }
  if constexpr (EmbeddingModel<M>) {
    return baseline::zero();
  } else {
    fail(
        "glassbox::{}: the model has no pad token and is not an EmbeddingModel, so it has no default baseline; set "
        "options.baseline to baseline::token(id) or baseline::removal()",
        caller);
  }
}

/// The baseline a perturbation method uses: `requested`, or the model's default_baseline when empty.
template <Model M>
baseline resolve_baseline(const M& model, const std::optional<baseline>& requested, std::string_view caller) {
  return requested ? *requested : default_baseline(model, caller);
}

/// The baseline input embeddings [T, d] for `tokens` (every position absent) on an EmbeddingModel.
template <EmbeddingModel M>
tensor2 baseline_embeddings(const M& model, token_span tokens, const baseline& b, std::string_view caller) {
  const tensor2 e = model_embeddings(model, tokens, caller);
  const std::size_t t = e.shape(0), d = e.shape(1);
  switch (b.kind()) {
    case baseline_kind::zero: return xt::zeros<float>({t, d});
    case baseline_kind::embedding: {
      const tensor2& v = b.embedding_value();
      require<shape_error>(v.dimension() == 2 && v.shape(1) == d && (v.shape(0) == 1 || v.shape(0) == t),
                           "glassbox::{}: baseline embedding must be [1, {}] or [{}, {}], got [{}, {}]", caller, d, t,
                           d, v.shape(0), v.shape(1));
      tensor2 out({t, d});
      for (std::size_t i = 0; i < t; ++i)
        std::copy_n(v.data() + (v.shape(0) == 1 ? 0 : i * d), d, out.data() + i * d);
      return out;
    }
    case baseline_kind::pad_token:
    case baseline_kind::token: {
      const token_sequence replaced(t, baseline_token(model, b, caller));
      return model_embeddings(model, replaced, caller);
    }
    case baseline_kind::removal:
      fail("glassbox::{}: baseline removal deletes tokens, so it has no embeddings; gradient methods need pad, token, "
           "zero or embedding",
           caller);
  }
  fail("glassbox::{}: unknown baseline", caller);
}

}  // namespace detail
}  // namespace glassbox
