// Not part of the library (glassbox is header-only): the reference GPT-2 in float, compiled once for
// the repository's own programs. CMake's object library `glassbox_gpt2_float` (and
// `glassbox_gpt2_double`, src/gpt2_double.cpp) is linked by the tests, the examples and the command
// line, and gives them GLASSBOX_EXTERN_GPT2, so that none of their other translation units compiles
// the model again (docs/building.md, "Compile-time advice").
#include "glassbox/models/gpt2.hpp"

template class glassbox::models::basic_gpt2<float>;
