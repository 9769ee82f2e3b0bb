// The one translation unit of a test program that compiles the reference GPT-2: explicit
// instantiation definitions of basic_gpt2<float> and basic_gpt2<double>. Other translation units
// include gpt2_extern.hpp.
#include "glassbox/models/gpt2.hpp"

template class glassbox::models::basic_gpt2<float>;
template class glassbox::models::basic_gpt2<double>;
