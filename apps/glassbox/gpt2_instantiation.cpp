// The one translation unit of the command line that compiles the reference GPT-2 (float); the
// others see `extern template` in cli.hpp.
#include "glassbox/models/gpt2.hpp"

template class glassbox::models::basic_gpt2<float>;
