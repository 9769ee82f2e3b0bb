// glassbox: types and values named so that they depend on a template parameter. In a template, code
// over them is compiled when the template is instantiated, not when the header is read: what
// including a header costs a translation unit that does not call it (docs/building.md, "Include
// cost").
#pragma once

namespace glassbox::detail {

/// U, named so that it depends on T (see dependent_t).
template <class T, class U>
struct dependent_type {
  using type = U;
};

/// U as a type that depends on T: in a template on T, code over dependent_t<T, double> (Eigen or
/// xtensor expressions, JSON values) is compiled when the template is instantiated, not when the
/// header is read.
template <class T, class U>
using dependent_t = typename dependent_type<T, U>::type;

/// `value` as an expression whose type depends on T (see dependent_t): `depend<T>(m).transpose() * m`
/// in a template on T is compiled when the template is instantiated, not when the header is read.
template <class T, class U>
constexpr dependent_t<T, U>& depend(U& value) noexcept {
  return value;
}

}  // namespace glassbox::detail
