# glassbox tokenize (issue 18) and text input through GPT-2's byte-level BPE: the tokenizer is picked from
# the files beside the model (vocab.json + merges.txt or tokenizer.json: BPE; vocab.txt: words), token
# strings are readable (a space shown as "␣", a part of a multi-byte character as <0xE2>), --file writes
# one JSON line per input line, and the errors. The BPE folders are written by bpe_test_folder.cpp.
#
# Run with -P (script mode, PROGRAM and WORK = the BPE folders' directory set) it checks files the
# commands write: HTML pages show a BPE space as a no-break space (U+00A0), not as "␣", and a data
# file's "text" lines go through the BPE tokenizer.
if(CMAKE_SCRIPT_MODE_FILE)
  cmake_minimum_required(VERSION 3.23)  # string(JSON) in script mode
  include("${CMAKE_CURRENT_LIST_DIR}/script_support.cmake")
  string(ASCII 194 160 nbsp)  # U+00A0 in UTF-8
  set(model "${WORK}/pair")
  run_glassbox(explain --model "${model}" --text "Hello world" --target "␣world" --method saliency
               --html "${WORK}/explain.html")
  run_glassbox(attention --model "${model}" --text "Hello world" --method attention-rollout --html "${WORK}/attention.html")
  run_glassbox(dla --model "${model}" --text "Hello world" --target Hello --contrast "␣world" --html "${WORK}/dla.html")
  file(READ "${WORK}/dla.html" html)
  if(NOT html MATCHES "position 1 \\(${nbsp}world\\)" OR NOT html MATCHES "logit\\(${nbsp}world\\)" OR html MATCHES "␣world")
    message(FATAL_ERROR "dla --html: the token ' world' is not shown with a no-break space in ${WORK}/dla.html")
  endif()
  foreach(page explain attention)
    file(READ "${WORK}/${page}.html" html)
    if(NOT html MATCHES ">${nbsp}world<")
      message(FATAL_ERROR "${page} --html: no token ' world' shown with a no-break space in ${WORK}/${page}.html")
    endif()
    if(html MATCHES "␣world")
      message(FATAL_ERROR "${page} --html: the token ' world' is shown as '␣world' in ${WORK}/${page}.html")
    endif()
  endforeach()
  file(WRITE "${WORK}/data.jsonl" "{\"text\": \"Hello world\"}\n{\"text\": \"world Hello\", \"target\": \"␣world\"}\n")
  file(REMOVE "${WORK}/data_out.jsonl")
  run_glassbox(explain --model "${model}" --data "${WORK}/data.jsonl" --out "${WORK}/data_out.jsonl" --method saliency)
  file(STRINGS "${WORK}/data_out.jsonl" lines)
  list(LENGTH lines n)
  if(NOT n EQUAL 2)
    message(FATAL_ERROR "explain --data on a BPE model: ${n} result lines, expected 2")
  endif()
  list(GET lines 0 first)
  list(GET lines 1 second)
  string(JSON ids GET "${first}" token_ids)
  string(JSON target GET "${second}" target token)
  string(REGEX REPLACE "[ \n]" "" ids "${ids}")
  if(NOT ids STREQUAL "[259,264]" OR NOT target EQUAL 264)
    message(FATAL_ERROR "explain --data on a BPE model: line 1 token_ids ${ids} (expected [259,264]), line 2 target "
                        "${target} (expected 264)\n${first}\n${second}")
  endif()
  return()
endif()

set(bpe_dir "${glassbox_cli_work}/bpe")
add_executable(bpe_test_folder "${CMAKE_CURRENT_LIST_DIR}/bpe_test_folder.cpp")
target_link_libraries(bpe_test_folder PRIVATE glassbox::glassbox glassbox_warnings glassbox_gpt2_float
                                              glassbox_gpt2_double)
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
tokenize_test("info on a BPE model" ARGS info --model "${bpe_dir}/pair"
              PASS "vocabulary   266 tokens \\(GPT-2 byte-level BPE: 266 tokens, 9 merges\\)")
tokenize_test("info --json on a BPE model" ARGS info --model "${bpe_dir}/pair" --json -
              PASS "\"vocabulary\": null,\n +\"tokenizer\": \"bpe\",\n +\"bpe\": {\n +\"tokens\": 266,\n +\"merges\": 9\n +}")
add_test(NAME "cli: BPE tokens in HTML pages and data files"
         COMMAND "${CMAKE_COMMAND}" "-DPROGRAM=$<TARGET_FILE:glassbox_cli>" "-DWORK=${bpe_dir}"
                 -P "${CMAKE_CURRENT_LIST_DIR}/tokenize.cmake")
set_tests_properties("cli: BPE tokens in HTML pages and data files" PROPERTIES LABELS cli TIMEOUT 600)
list(APPEND tokenize_tests "cli: BPE tokens in HTML pages and data files")
set_tests_properties(${tokenize_tests} PROPERTIES FIXTURES_REQUIRED cli_bpe_folder)
