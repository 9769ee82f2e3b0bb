# glassbox patch, dla and neurons (issue 17): tables on the bundled model, the JSON documents (keys,
# matrix shapes, exact properties), the HTML pages, and the errors. Included by CMakeLists.txt to add
# the tests; run with -P (script mode, PROGRAM and WORK set, WORK holding reviews.jsonl) it is the JSON check itself:
#   - patch --level resid on a pair differing in one word: restored is 1 at block 0 at that word and 0
#     at every other position of block 0 (patching the only changed position at the embeddings turns
#     the corrupted input into the clean one; patching an unchanged one changes nothing);
#   - the matrices are [layers, positions] (resid, mlp), [layers, heads], [layers, neurons], and --layer
#     keeps one row;
#   - dla: the components sum to `total`, `total` equals the model's `logit_diff` to 1e-3, and on
#     "the food was not good . =>" head L3H1 has the most negative share;
#   - neurons: N neurons, sorted by |correlation| (or by mutual information).
if(CMAKE_SCRIPT_MODE_FILE)
  cmake_minimum_required(VERSION 3.23)  # string(JSON) in script mode

  include("${CMAKE_CURRENT_LIST_DIR}/script_support.cmake")
  function(expect_shape json rows cols what)
    string(JSON r LENGTH "${json}" ${what})
    string(JSON c LENGTH "${json}" ${what} 0)
    if(NOT r EQUAL rows OR NOT c EQUAL cols)
      message(FATAL_ERROR "${what}: expected a [${rows}, ${cols}] matrix, got [${r}, ${c}]")
    endif()
  endfunction()

  set(good "the food was good . =>")
  set(bad "the food was bad . =>")
  set(diff logit-diff:positive,negative)

  # patch --level resid: keys, shapes, the exact restoration at the changed word.
  run_glassbox(patch --clean "${good}" --corrupt "${bad}" --metric ${diff} --json "${WORK}/resid.json"
               --html "${WORK}/resid.html")
  file(READ "${WORK}/resid.json" j)
  foreach(key schema version method level metric clean_value corrupt_value values restored axes model_calls)
    string(JSON value ERROR_VARIABLE missing GET "${j}" ${key})
    if(missing)
      message(FATAL_ERROR "patch JSON: missing key ${key}")
    endif()
  endforeach()
  string(JSON schema GET "${j}" schema)
  string(JSON level GET "${j}" level)
  string(JSON method GET "${j}" method)
  string(JSON calls GET "${j}" model_calls)
  if(NOT schema STREQUAL "glassbox.patching" OR NOT level STREQUAL "residual" OR
     NOT method STREQUAL "activation_patching" OR NOT calls EQUAL 26)
    message(FATAL_ERROR "patch JSON: schema ${schema}, level ${level}, method ${method}, model_calls ${calls}; "
                        "expected glassbox.patching, residual, activation_patching, 2 + 4 x 6 = 26")
  endif()
  expect_shape("${j}" 4 6 values)
  expect_shape("${j}" 4 6 restored)
  string(JSON rows_name GET "${j}" axes rows name)
  string(JSON cols_name GET "${j}" axes columns name)
  string(JSON word GET "${j}" axes columns labels 3)
  if(NOT rows_name STREQUAL "layer" OR NOT cols_name STREQUAL "position" OR NOT word STREQUAL "good")
    message(FATAL_ERROR "patch JSON axes: ${rows_name} x ${cols_name}, column 3 '${word}'; expected layer x position, 'good'")
  endif()
  string(JSON clean GET "${j}" clean_value)
  string(JSON corrupt GET "${j}" corrupt_value)
  if(NOT clean GREATER 0 OR NOT corrupt LESS 0)
    message(FATAL_ERROR "patch: the bundled model should prefer positive on '${good}' (${clean}) and negative on "
                        "'${bad}' (${corrupt})")
  endif()
  foreach(p RANGE 5)
    string(JSON v GET "${j}" restored 0 ${p})
    if(p EQUAL 3)
      set(lo 0.9999)
      set(hi 1.0001)
    else()
      set(lo -0.0001)
      set(hi 0.0001)
    endif()
    if(v LESS lo OR v GREATER hi)
      message(FATAL_ERROR "patch: restored[0][${p}] = ${v}, expected within [${lo}, ${hi}]")
    endif()
  endforeach()
  file(READ "${WORK}/resid.html" html)
  if(NOT html MATCHES "<svg[^>]*class=\"hm\"" OR NOT html MATCHES "<title>L0 → good: 1")
    message(FATAL_ERROR "patch --html: no heatmap with the value of L0 at 'good' on hover in ${WORK}/resid.html")
  endif()

  # Other levels: shapes [layers, heads], [layers, positions], [layers, neurons]; --layer keeps one row.
  run_glassbox(patch --clean "${good}" --corrupt "${bad}" --metric ${diff} --level head --json "${WORK}/head.json")
  file(READ "${WORK}/head.json" j)
  expect_shape("${j}" 4 4 restored)
  string(JSON cols_name GET "${j}" axes columns name)
  string(JSON label GET "${j}" axes columns labels 1)
  if(NOT cols_name STREQUAL "head" OR NOT label STREQUAL "H1")
    message(FATAL_ERROR "patch --level head: columns ${cols_name}, label ${label}; expected head, H1")
  endif()
  run_glassbox(patch --clean "${good}" --corrupt "${bad}" --metric ${diff} --level mlp --layer 2
               --json "${WORK}/mlp.json")
  file(READ "${WORK}/mlp.json" j)
  expect_shape("${j}" 1 6 restored)
  string(JSON row GET "${j}" axes rows indices 0)
  if(NOT row EQUAL 2)
    message(FATAL_ERROR "patch --layer 2: the row is block ${row}")
  endif()
  run_glassbox(patch --clean "${good}" --corrupt "${bad}" --metric log-prob:positive --level neuron
               --json "${WORK}/neuron.json")
  file(READ "${WORK}/neuron.json" j)
  expect_shape("${j}" 4 256 restored)

  # Attribution patching with --compare: three passes, and its agreement with activation patching.
  run_glassbox(patch --clean "${good}" --corrupt "${bad}" --metric ${diff} --kind attribution --compare
               --json "${WORK}/attribution.json")
  file(READ "${WORK}/attribution.json" j)
  string(JSON method GET "${j}" method)
  string(JSON calls GET "${j}" model_calls)
  string(JSON other GET "${j}" comparison method)
  string(JSON pearson GET "${j}" comparison pearson_restored)
  if(NOT method STREQUAL "attribution_patching" OR NOT calls EQUAL 3 OR NOT other STREQUAL "activation_patching"
     OR NOT pearson MATCHES "^-?[0-9.eE+-]+$" OR pearson GREATER 1.000001 OR pearson LESS -1.000001)
    message(FATAL_ERROR "patch --kind attribution --compare: method ${method}, model_calls ${calls}, compared with "
                        "${other}, Pearson ${pearson}")
  endif()
  expect_shape("${j}" 4 6 "comparison;restored")

  # dla --data: one glassbox.dla line per input of the data file, each with total = logit_diff (1e-3),
  # and the line of an input equal to what --json gives for it alone.
  run_glassbox(dla --data "${WORK}/reviews.jsonl" --out "${WORK}/dla.jsonl" --target positive --contrast negative)
  file(STRINGS "${WORK}/reviews.jsonl" inputs)
  file(STRINGS "${WORK}/dla.jsonl" lines)
  list(LENGTH inputs n_inputs)
  list(LENGTH lines n_lines)
  if(NOT n_lines EQUAL n_inputs)
    message(FATAL_ERROR "dla --data: ${n_lines} result lines for ${n_inputs} inputs")
  endif()
  foreach(line IN LISTS lines)
    string(JSON total GET "${line}" total)
    string(JSON actual GET "${line}" logit_diff)
    json_number_scaled("${total}" 6 t)
    json_number_scaled("${actual}" 6 a)
    math(EXPR gap "${t} - ${a}")
    if(gap GREATER 1000 OR gap LESS -1000)
      message(FATAL_ERROR "dla --data: total ${total} against logit_diff ${actual}")
    endif()
  endforeach()
  list(GET inputs 0 first_input)
  string(JSON first_ids GET "${first_input}" token_ids)
  string(JSON n_ids LENGTH "${first_input}" token_ids)
  set(ids "")
  math(EXPR last "${n_ids} - 1")
  foreach(k RANGE ${last})
    string(JSON id GET "${first_input}" token_ids ${k})
    list(APPEND ids "${id}")
  endforeach()
  string(REPLACE ";" "," ids "${ids}")
  run_glassbox(dla --tokens "${ids}" --target positive --contrast negative --json "${WORK}/dla_first.json")
  file(READ "${WORK}/dla_first.json" alone)
  list(GET lines 0 first_line)
  string(JSON alone_total GET "${alone}" total)
  string(JSON line_total GET "${first_line}" total)
  if(NOT alone_total STREQUAL line_total)
    message(FATAL_ERROR "dla --data line 1 total ${line_total} differs from --json's ${alone_total}")
  endif()

  # dla: the components sum to total, and total is the model's logit difference.
  run_glassbox(dla --text "the food was not good . =>" --target positive --contrast negative --neurons 5
               --json "${WORK}/dla.json" --html "${WORK}/dla.html")
  file(READ "${WORK}/dla.json" j)
  string(JSON schema GET "${j}" schema)
  if(NOT schema STREQUAL "glassbox.dla")
    message(FATAL_ERROR "dla JSON: schema ${schema}")
  endif()
  string(JSON n LENGTH "${j}" components)
  math(EXPR last "${n} - 1")
  set(sum 0)
  set(names "")
  set(lowest "")
  foreach(i RANGE ${last})
    string(JSON name GET "${j}" components ${i} name)
    string(JSON c GET "${j}" components ${i} contribution)
    list(APPEND names "${name}")
    if(lowest STREQUAL "" OR c LESS lowest)
      set(lowest "${c}")
      set(lowest_name "${name}")
    endif()
    json_number_scaled("${c}" 6 micro)
    math(EXPR sum "${sum} + ${micro}")
  endforeach()
  foreach(expected embed pos_embed L0H0 L3H1 mlp0 mlp3)
    if(NOT expected IN_LIST names)
      message(FATAL_ERROR "dla: no component named ${expected} (got ${names})")
    endif()
  endforeach()
  # The negated review's label: its largest share toward "negative" is head L3H1's (docs/cli.md).
  if(NOT lowest_name STREQUAL "L3H1")
    message(FATAL_ERROR "dla: the most negative share is ${lowest_name}'s (${lowest}), expected L3H1's")
  endif()
  string(JSON total GET "${j}" total)
  string(JSON logit_diff GET "${j}" logit_diff)
  json_number_scaled("${total}" 6 total_micro)
  json_number_scaled("${logit_diff}" 6 diff_micro)
  math(EXPR gap_sum "${sum} - ${total_micro}")
  math(EXPR gap_model "${total_micro} - ${diff_micro}")
  # Truncation to 1e-6 loses at most 1e-6 per component: 100 units allow for it.
  if(gap_sum GREATER 100 OR gap_sum LESS -100 OR gap_model GREATER 1000 OR gap_model LESS -1000)
    message(FATAL_ERROR "dla: components sum to ${sum}e-6, total ${total}, logit_diff ${logit_diff}")
  endif()
  if(NOT logit_diff LESS 0)
    message(FATAL_ERROR "dla: the bundled model should prefer negative on 'the food was not good . =>', got ${logit_diff}")
  endif()
  string(JSON n LENGTH "${j}" neurons)
  if(NOT n EQUAL 5)
    message(FATAL_ERROR "dla --neurons 5: ${n} neurons")
  endif()
  set(previous "")
  foreach(i RANGE 4)
    string(JSON c GET "${j}" neurons ${i} contribution)
    string(REGEX REPLACE "^-" "" c "${c}")
    if(previous AND c GREATER previous)
      message(FATAL_ERROR "dla --neurons: not sorted by |share| (${previous} then ${c})")
    endif()
    set(previous "${c}")
  endforeach()
  file(READ "${WORK}/dla.html" html)
  if(NOT html MATCHES "<title>L0H0: [-+][0-9]")
    message(FATAL_ERROR "dla --html: no bar for L0H0 in ${WORK}/dla.html")
  endif()

  # neurons: N neurons sorted by the measure.
  foreach(measure correlation mutual-information)
    run_glassbox(neurons --data "${WORK}/reviews.jsonl" --property is_negated --top 7 --measure ${measure}
                 --threads 1 --json "${WORK}/neurons-${measure}.json")
    file(READ "${WORK}/neurons-${measure}.json" j)
    string(JSON schema GET "${j}" schema)
    string(JSON n LENGTH "${j}" neurons)
    if(NOT schema STREQUAL "glassbox.neurons" OR NOT n EQUAL 7)
      message(FATAL_ERROR "neurons --measure ${measure}: schema ${schema}, ${n} neurons (expected 7)")
    endif()
    set(previous "")
    foreach(i RANGE 6)
      if(measure STREQUAL "correlation")
        string(JSON v GET "${j}" neurons ${i} correlation)
        string(REGEX REPLACE "^-" "" v "${v}")
      else()
        string(JSON v GET "${j}" neurons ${i} mutual_information)
      endif()
      string(JSON examples LENGTH "${j}" neurons ${i} top_activations)
      if(NOT examples EQUAL 5)
        message(FATAL_ERROR "neurons: ${examples} top activations of neuron ${i}, expected 5")
      endif()
      if(NOT previous STREQUAL "" AND v GREATER previous)
        message(FATAL_ERROR "neurons --measure ${measure}: not sorted (${previous} then ${v})")
      endif()
      set(previous "${v}")
    endforeach()
  endforeach()
  return()
endif()

set(circuits_work "${glassbox_cli_work}/circuits")
file(MAKE_DIRECTORY "${circuits_work}")

glassbox_cli_test("circuits: generate reviews" ARGS generate-data --n 40 --seed 11 --out "${circuits_work}/reviews.jsonl")
set_tests_properties("cli: circuits: generate reviews" PROPERTIES FIXTURES_SETUP circuits_reviews)
add_test(NAME "cli: circuits: JSON documents and their exact properties"
         COMMAND "${CMAKE_COMMAND}" "-DPROGRAM=$<TARGET_FILE:glassbox_cli>" "-DWORK=${circuits_work}"
                 -P "${CMAKE_CURRENT_LIST_DIR}/circuits.cmake")
set_tests_properties("cli: circuits: JSON documents and their exact properties" PROPERTIES LABELS cli TIMEOUT 600
                     FIXTURES_REQUIRED circuits_reviews)

glassbox_cli_test("patch --help" ARGS patch --help
                  PASS "--clean.*--corrupt.*--metric.*--level.*--kind.*--layer.*--compare.*--threads.*--json.*--html")
# The terminal table: at block 0 only the changed word restores (exactly 1); the marker carries it from block 1 on.
glassbox_cli_test("patch" ARGS patch --clean "the food was good . =>" --corrupt "the food was bad . =>"
                  --metric logit-diff:positive,negative --threads 1
                  PASS "activation_patching \\| level residual \\| metric logit-diff:positive,negative \\(contrast of logit: token 3 minus token 4 at the last position\\)\nclean +\"the food was good \\. =>\" +metric \\+[0-9.]+\ncorrupt +\"the food was bad \\. =>\" +metric -[0-9.]+\nrestored fraction \\(rows: layers, columns: positions\\):\n +the +food +was +good +\\. +=>\n +L0 +[-+]0\\.000 +[-+]0\\.000 +[-+]0\\.000 +\\+1\\.000 +[-+]0\\.000 +[-+]0\\.000\n +L1 .*\n +L2 .*\n +L3 .*\n26 model calls")
glassbox_cli_test("patch --level neuron" ARGS patch --clean "the food was good . =>" --corrupt "the food was bad . =>"
                  --metric logit-diff:positive,negative --level neuron --kind attribution --top 3
                  PASS "attribution_patching \\| level neuron .*top 3 of 1024 neurons by \\|restored\\|:\n +layer +neuron +restored +value\n +L[0-3] +[0-9]+ .*\n.*\n.*\n3 model calls")
glassbox_cli_test("dla" ARGS dla --text "the food was good . =>" --target positive --contrast negative
                  PASS "direct logit attribution of logit\\(positive\\) - logit\\(negative\\) at position 5 \\(=>\\) \\| final norm scale [0-9.]+ \\(frozen\\)\ncomponent +share\nembed +[-+][0-9.]+ .*\npos_embed .*\nL0H0 .*\nL0H1 .*\nL0H2 .*\nL0H3 .*\nattn_bias0 .*\nmlp0 .*ln_final_bias .*\ntotal \\+[0-9.]+ \\(sum of the shares\\); the model's logit difference: \\+[0-9.]+")
glassbox_cli_test("neurons --ablate" ARGS neurons --data "${circuits_work}/reviews.jsonl" --property is_negated --layer 2
                  --top 2 --ablate mean --threads 1 --html "${circuits_work}/neurons.html"
                  PASS "neurons of blocks 2 ranked by correlation with \"is_negated\" \\| 40 sequences, [0-9]+ labelled tokens\nablation: mean \\| metric logit-diff:positive,negative .*\nrank +neuron +correlation +MI \\(bits\\) +mean change +mean \\|chg\\| +sign flips\n +1 +L2N[0-9]+ +[-+][0-9.]+ +[0-9.]+ +[-+][0-9.]+ +[0-9.]+ +[0-9]+/40\n +[0-9.-]+ +.*\\[[^]]+\\]")
set_tests_properties("cli: neurons --ablate" PROPERTIES FIXTURES_REQUIRED circuits_reviews)

glassbox_cli_test("error: patch different lengths" ARGS patch --clean "the food was good . =>" --corrupt "the food was very bad . =>"
                  --metric logit-diff:positive,negative FAIL
                  PASS "--clean and --corrupt must have the same number of tokens \\(positions are patched one to one\\), got 6 and 7")
glassbox_cli_test("error: patch unknown word" ARGS patch --clean "the food was good . =>" --corrupt "the food was bad . =>"
                  --metric logit-diff:positive,nosuchword FAIL
                  PASS "--metric: 'nosuchword' is neither a word of the vocabulary nor a token id")
glassbox_cli_test("error: patch unknown input word" ARGS patch --clean "the food was gud . =>" --corrupt "the food was bad . =>"
                  --metric logit-diff:positive,negative FAIL
                  PASS "--clean: unknown word 'gud'")
glassbox_cli_test("error: patch bad metric" ARGS patch --clean "the food was good . =>" --corrupt "the food was bad . =>"
                  --metric logit:positive FAIL
                  PASS "--metric must be logit-diff:A,B or log-prob:A \\(A, B words or token ids\\), got 'logit:positive'")
glassbox_cli_test("error: patch bad level" ARGS patch --clean "the food was good . =>" --corrupt "the food was bad . =>"
                  --metric log-prob:positive --level block FAIL
                  PASS "--level must be resid, head, mlp or neuron, got 'block'")
glassbox_cli_test("error: patch layer out of range" ARGS patch --clean "the food was good . =>" --corrupt "the food was bad . =>"
                  --metric log-prob:positive --layer 4 FAIL
                  PASS "--layer must be a block 0..3, got 4")
glassbox_cli_test("error: dla unknown target" ARGS dla --text "the food was good . =>" --target nosuchword FAIL
                  PASS "--target: 'nosuchword' is neither a word of the vocabulary nor a token id")
glassbox_cli_test("error: dla position" ARGS dla --text "the food was good . =>" --target positive --position 6 FAIL
                  PASS "--position must be in \\[-6, 5\\] \\(negative counts from the end\\), got 6")
glassbox_cli_test("error: neurons unknown property" ARGS neurons --data "${circuits_work}/reviews.jsonl" --property nosuch FAIL
                  PASS "reviews.jsonl line 1: no per-token property \"nosuch\" \\(\"properties\" holds: .*is_negated")
set_tests_properties("cli: error: neurons unknown property" PROPERTIES FIXTURES_REQUIRED circuits_reviews)
glassbox_cli_test("error: neurons --ablate on another model needs --metric" ARGS neurons --model "${PROJECT_SOURCE_DIR}/models/reviews"
                  --data "${circuits_work}/reviews.jsonl" --property is_negated --ablate zero FAIL
                  PASS "--ablate needs --metric \\(logit-diff:A,B or log-prob:A\\) on a model other than the bundled one")
glassbox_cli_test("error: neurons bad measure" ARGS neurons --data "${circuits_work}/reviews.jsonl" --property is_negated --measure entropy FAIL
                  PASS "--measure must be one of correlation, mutual-information")
