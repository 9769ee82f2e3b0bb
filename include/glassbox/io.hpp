// glassbox: the io layer (safetensors files, word vocabularies, activation and probe files). Used by
// models/ and apps/, never by the algorithm modules; include it explicitly.
#pragma once

#include "glassbox/io/activation_file.hpp"
#include "glassbox/io/bpe_tokenizer.hpp"
#include "glassbox/io/representation_files.hpp"
#include "glassbox/io/sae_file.hpp"
#include "glassbox/io/safetensors.hpp"
#include "glassbox/io/vocabulary.hpp"
