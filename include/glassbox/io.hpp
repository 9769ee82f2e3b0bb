// glassbox: the io layer (safetensors files, word vocabularies). Used by models/ and apps/, never by the
// algorithm modules; include it explicitly.
#pragma once

#include "glassbox/io/safetensors.hpp"
#include "glassbox/io/vocabulary.hpp"
