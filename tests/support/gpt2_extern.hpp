// Include instead of glassbox/models/gpt2.hpp in a test translation unit: declares the explicit
// instantiations that tests/support/gpt2_instantiation.cpp defines, so that the model's heavy
// members are compiled once per test program (add gpt2_instantiation.cpp to its sources).
#pragma once

#include "glassbox/models/gpt2.hpp"

extern template class glassbox::models::basic_gpt2<float>;
extern template class glassbox::models::basic_gpt2<double>;
