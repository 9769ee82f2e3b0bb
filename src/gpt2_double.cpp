// Not part of the library (glassbox is header-only): the reference GPT-2 in double, compiled once for
// the repository's own programs (the object library `glassbox_gpt2_double`); src/gpt2_float.cpp says
// how they use it. A source and a library of its own, so that the two precisions compile in parallel
// and a program that uses float only (every example) does not compile double.
#include "glassbox/models/gpt2.hpp"

template class glassbox::models::basic_gpt2<double>;
