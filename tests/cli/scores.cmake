# glassbox scores (step scores, docs/cli.md "Step scores"): the table, the glassbox.scores document and
# its exact properties, the HTML page, and the errors. Included by CMakeLists.txt to add the tests; run
# with -P (script mode, PROGRAM and WORK set) it is the JSON check itself:
#   - teacher-forced "positive" after a positive review: one step, one model call, surprisal =
#     -log_probability, probability = exp(log_probability) within 1e-6, the summary's sequence
#     log-probability equal to the step's, perplexity = 1 / probability, and p(positive) - p(negative) > 0;
#   - --generate 3: three steps, three model calls, each generated token the step's top token with
#     probability = top probability.
if(CMAKE_SCRIPT_MODE_FILE)
  cmake_minimum_required(VERSION 3.23)  # string(JSON) in script mode

  include("${CMAKE_CURRENT_LIST_DIR}/script_support.cmake")
  # Fails unless |a - b| <= tolerance, all three in units of 1e-9.
  function(expect_close a b tolerance what)
    math(EXPR gap "${a} - ${b}")
    if(gap GREATER tolerance OR gap LESS -${tolerance})
      message(FATAL_ERROR "${what}: ${a} against ${b} (1e-9 units), tolerance ${tolerance}")
    endif()
  endfunction()

  # Teacher-forced, contrastive.
  run_glassbox(scores --text "the food was good . =>" --continuation "positive" --foil negative
               --json "${WORK}/forced.json" --html "${WORK}/forced.html")
  file(READ "${WORK}/forced.json" j)
  foreach(key schema version method tokens token_ids prompt_length generated steps summary one_pass model_calls)
    string(JSON value ERROR_VARIABLE missing GET "${j}" ${key})
    if(missing)
      message(FATAL_ERROR "scores JSON: missing key ${key}")
    endif()
  endforeach()
  string(JSON schema GET "${j}" schema)
  string(JSON version GET "${j}" version)
  string(JSON calls GET "${j}" model_calls)
  string(JSON n LENGTH "${j}" steps)
  string(JSON prompt_length GET "${j}" prompt_length)
  string(JSON token GET "${j}" steps 0 token)
  string(JSON foil GET "${j}" steps 0 foil token)
  if(NOT schema STREQUAL "glassbox.scores" OR NOT version EQUAL 1 OR NOT calls EQUAL 1 OR NOT n EQUAL 1
     OR NOT prompt_length EQUAL 6 OR NOT token STREQUAL "positive" OR NOT foil STREQUAL "negative")
    message(FATAL_ERROR "scores JSON: schema ${schema} v${version}, ${calls} model calls, ${n} steps, prompt of "
                        "${prompt_length}, token ${token}, foil ${foil}; expected glassbox.scores v1, 1, 1, 6, "
                        "positive, negative")
  endif()
  string(JSON p GET "${j}" steps 0 probability)
  string(JSON lp GET "${j}" steps 0 log_probability)
  string(JSON s GET "${j}" steps 0 surprisal)
  string(JSON h GET "${j}" steps 0 entropy)
  string(JSON contrast GET "${j}" steps 0 contrast)
  string(JSON seq GET "${j}" summary sequence_log_probability)
  string(JSON ppl GET "${j}" summary perplexity)
  json_number_scaled("${p}" 9 p9)
  json_number_scaled("${lp}" 9 lp9)
  json_number_scaled("${s}" 9 s9)
  json_number_scaled("${h}" 9 h9)
  json_number_scaled("${contrast}" 9 c9)
  json_number_scaled("${seq}" 9 seq9)
  math(EXPR minus_lp "0 - ${lp9}")
  expect_close(${s9} ${minus_lp} 2 "surprisal = -log p")
  expect_close(${seq9} ${lp9} 2 "sequence log-probability of one step = its log p")
  if(p9 LESS_EQUAL 0 OR p9 GREATER 1000000000 OR h9 LESS 0 OR c9 LESS_EQUAL 0 OR c9 GREATER p9)
    message(FATAL_ERROR "scores: p ${p}, entropy ${h}, p - p(negative) ${contrast}; expected 0 < p <= 1, "
                        "entropy >= 0, 0 < contrast <= p on a positive review")
  endif()
  # exp(log p) = p and perplexity = 1 / p: CMake has no exp, so the test checks p * perplexity = 1 (1e-6).
  json_number_scaled("${ppl}" 9 ppl9)
  math(EXPR product "${p9} * ${ppl9} / 1000000000")
  expect_close(${product} 1000000000 1000 "p x perplexity = 1")
  file(READ "${WORK}/forced.html" html)
  if(NOT html MATCHES "title=\"p = [0-9.]+, log p = -?[0-9.]+, entropy [0-9.]+, surprisal [0-9.]+, p - p\\(negative\\) = \\+[0-9.]+")
    message(FATAL_ERROR "scores --html: no answer token with its scores on hover in ${WORK}/forced.html")
  endif()

  # Greedy generation: each token is the step's top token.
  run_glassbox(scores --text "the food was not good" --generate 3 --json "${WORK}/generated.json")
  file(READ "${WORK}/generated.json" j)
  string(JSON n LENGTH "${j}" steps)
  string(JSON calls GET "${j}" model_calls)
  string(JSON generated GET "${j}" generated)
  string(JSON total LENGTH "${j}" token_ids)
  if(NOT n EQUAL 3 OR NOT calls EQUAL 3 OR NOT generated OR NOT total EQUAL 8)
    message(FATAL_ERROR "scores --generate 3: ${n} steps, ${calls} model calls, generated ${generated}, ${total} tokens")
  endif()
  foreach(g RANGE 2)
    string(JSON id GET "${j}" steps ${g} id)
    string(JSON top GET "${j}" steps ${g} top id)
    string(JSON p GET "${j}" steps ${g} probability)
    string(JSON tp GET "${j}" steps ${g} top probability)
    math(EXPR at "5 + ${g}")
    string(JSON in_sequence GET "${j}" token_ids ${at})
    if(NOT id EQUAL top OR NOT p STREQUAL tp OR NOT in_sequence EQUAL id)
      message(FATAL_ERROR "scores --generate step ${g}: token ${id} (p ${p}), top ${top} (p ${tp}), token_ids[${at}] ${in_sequence}")
    endif()
    string(JSON contrast_type TYPE "${j}" steps ${g} contrast)
    if(NOT contrast_type STREQUAL "NULL")
      message(FATAL_ERROR "scores without --foil: contrast is ${contrast_type}, expected null")
    endif()
  endforeach()
  return()
endif()

set(scores_work "${glassbox_cli_work}/scores")
file(MAKE_DIRECTORY "${scores_work}")
add_test(NAME "cli: scores: JSON document and its exact properties"
         COMMAND "${CMAKE_COMMAND}" "-DPROGRAM=$<TARGET_FILE:glassbox_cli>" "-DWORK=${scores_work}"
                 -P "${CMAKE_CURRENT_LIST_DIR}/scores.cmake")
set_tests_properties("cli: scores: JSON document and its exact properties" PROPERTIES LABELS cli TIMEOUT 600)

glassbox_cli_test("scores --help" ARGS scores --help PASS "--text.*--tokens.*--continuation.*--generate.*--foil.*--json.*--html")
glassbox_cli_test("scores" ARGS scores --text "the food was good . =>" --continuation "positive" --foil negative
                  PASS "prompt  the food was good \\. =>\nanswer  positive\nstep scores \\(teacher-forced; entropy and surprisal in nats\\):\nstep  token +p +log p +entropy surprisal  p - p\\(foil\\)  top next token\n +0  positive +0\\.[0-9]+ +-[0-9.]+ +[0-9.]+ +[0-9.]+ +\\+0\\.[0-9]+  positive 0\\.[0-9]+\nsummary: mean entropy [0-9.]+, max entropy [0-9.]+, mean surprisal [0-9.]+, sequence log-probability -[0-9.]+, perplexity [0-9.]+; least confident step 0 \\(positive, p = 0\\.[0-9]+\\)\nfoil: negative\n1 model call\n")
glassbox_cli_test("scores --generate" ARGS scores --text "the food was not good . =>" --generate 2
                  PASS "step scores \\(generated greedily; .*\n +0  [^ ]+ .*\n +1  [^ ]+ .*\nsummary: .*\n2 model calls")
glassbox_cli_test("error: scores without an answer" ARGS scores --text "the food was good . =>" FAIL
                  PASS "give --continuation TEXT or --generate N")
glassbox_cli_test("error: scores unknown foil" ARGS scores --text "the food was good . =>" --continuation positive
                  --foil nosuchword FAIL PASS "--foil: 'nosuchword' is neither a word of the vocabulary nor a token id")
glassbox_cli_test("error: scores foil id out of range" ARGS scores --text "the food was good . =>" --continuation positive
                  --foil 99999 FAIL PASS "--foil: token id 99999 is out of range \\(the vocabulary has 224 tokens\\)")
glassbox_cli_test("error: scores --continuation and --generate" ARGS scores --text "the food was good . =>"
                  --continuation positive --generate 2 FAIL PASS "--continuation excludes --generate")
glassbox_cli_test("error: scores unknown continuation word" ARGS scores --text "the food was good . =>"
                  --continuation "splendid" FAIL PASS "--continuation: unknown word 'splendid'")
