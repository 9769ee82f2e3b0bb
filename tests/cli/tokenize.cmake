# glassbox tokenize (issue 18) and text input through GPT-2's byte-level BPE: the tokenizer is picked from
# the files beside the model (vocab.json + merges.txt or tokenizer.json: BPE; vocab.txt: words), token
# strings are readable (a space shown as "␣", a part of a multi-byte character as <0xE2>), --file writes
# one JSON line per input line, and the errors. The BPE folders are written by bpe_test_folder.cpp.
set(bpe_dir "${glassbox_cli_work}/bpe")
add_executable(bpe_test_folder "${CMAKE_CURRENT_LIST_DIR}/bpe_test_folder.cpp")
target_link_libraries(bpe_test_folder PRIVATE glassbox::glassbox glassbox_warnings glassbox_gpt2_instantiation)
target_include_directories(bpe_test_folder PRIVATE "${PROJECT_SOURCE_DIR}/tests/support")
add_test(NAME "cli: tokenize setup (BPE folders)" COMMAND bpe_test_folder "${bpe_dir}")
set_tests_properties("cli: tokenize setup (BPE folders)" PROPERTIES LABELS cli FIXTURES_SETUP cli_bpe_folder)
file(WRITE "${glassbox_cli_work}/tokenize_lines.txt" "Hello world\n€\n<|endoftext|>Hello\n")

set(tokenize_tests "")
# A function, not a macro: a macro would expand the escapes of PASS a second time.
function(tokenize_test name)
  glassbox_cli_test("${name}" ${ARGN})
  set(tokenize_tests ${tokenize_tests} "cli: ${name}" PARENT_SCOPE)
endfunction()
tokenize_test("tokenize --help" ARGS tokenize --help PASS "--model.*--tokenizer.*--text.*--file.*--json")
tokenize_test("tokenize BPE" ARGS tokenize --tokenizer "${bpe_dir}/pair" --text "Hello world"
              PASS "tokenizer  GPT-2 byte-level BPE \\(266 tokens, 9 merges\\).*\nids        259,264\n2 tokens:\n +0 +259  Hello\n +1 +264  ␣world\n")
tokenize_test("tokenize tokenizer.json" ARGS tokenize --tokenizer "${bpe_dir}/json/tokenizer.json" --text "Hello world"
              PASS "ids        259,264\n")
tokenize_test("tokenize --model BPE folder" ARGS tokenize --model "${bpe_dir}/pair" --text "€<|endoftext|>"
              PASS "ids        226,130,172,265\n.*  <0xE2>\n.*  <0x82>\n.*  <0xAC>\n.*  <\\|endoftext\\|>\n")
tokenize_test("tokenize --json" ARGS tokenize --tokenizer "${bpe_dir}/pair" --text "Hello world" --json
              PASS "\"tokenizer\": \"bpe\",\n +\"ids\": \\[\n +259,\n +264\n +\\],\n +\"tokens\": \\[\n +\"Hello\",\n +\" world\"")
tokenize_test("tokenize --file" ARGS tokenize --tokenizer "${bpe_dir}/pair" --file "${glassbox_cli_work}/tokenize_lines.txt"
              PASS "^{\"ids\":\\[259,264\\]}\n{\"ids\":\\[226,130,172\\]}\n{\"ids\":\\[265,259\\]}\n$")
tokenize_test("tokenize the bundled model's words" ARGS tokenize --text "the food was not good"
              PASS "tokenizer  word vocabulary \\(224 tokens\\).*5 tokens:\n +0 +[0-9]+  the\n")
tokenize_test("predict --text on a BPE model" ARGS predict --model "${bpe_dir}/pair" --text "Hello world" --top 1
              PASS "input   Hello ␣world\n")
tokenize_test("predict --json tokens on a BPE model" ARGS predict --model "${bpe_dir}/pair" --text "Hello world" --json -
              PASS "\"tokens\": \\[\n +\"Hello\",\n +\"␣world\"\n +\\],\n +\"token_ids\": \\[\n +259,\n +264")
tokenize_test("error: tokenize without input" ARGS tokenize --tokenizer "${bpe_dir}/pair" FAIL
              PASS "glassbox: error: tokenize: pass --text TEXT or --file FILE")
tokenize_test("error: tokenize a folder without tokenizer" ARGS tokenize --tokenizer "${glassbox_cli_work}/empty_model_dir"
              --text "a" FAIL PASS "glassbox: error: .*empty_model_dir holds no tokenizer")
tokenize_test("error: tokenize another tokenizer kind" ARGS tokenize --tokenizer "${bpe_dir}/wordpiece" --text "a" FAIL
              PASS "glassbox: error: .*tokenizer.json': model.type is \"WordPiece\"; only GPT-2's byte-level \"BPE\" is supported")
tokenize_test("explain --target on a BPE model" ARGS explain --model "${bpe_dir}/pair" --text "Hello world" --target "␣world"
              --method saliency PASS "␣world")
tokenize_test("error: --target not one BPE token" ARGS explain --model "${bpe_dir}/pair" --text "Hello" --target "xyz"
              --method saliency FAIL PASS "glassbox: error: --target: 'xyz' is neither one token of the BPE tokenizer nor a token id")
set_tests_properties(${tokenize_tests} PROPERTIES FIXTURES_REQUIRED cli_bpe_folder)
