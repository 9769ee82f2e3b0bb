# glassbox evaluate (issue 16): the ground-truth benchmark on a few generated reviews and a data file,
# its JSON fields, determinism under a seed (two runs with different thread budgets give the same JSON
# apart from the times), and its errors. Included by CMakeLists.txt to add the tests; run with -P (script
# mode, PROGRAM and WORK set) it is the determinism check itself.
if(CMAKE_SCRIPT_MODE_FILE)
  cmake_minimum_required(VERSION 3.23)  # IN_LIST and string(JSON) in script mode
  set(common evaluate --n 8 --seed 3 --methods occlusion,shapley-exact,saliency,integrated-gradients,attention-rollout
             --baselines pad,removal --steps 8 --exact-max-tokens 12 --resamples 200 --sensitivity-every 2)
  foreach(run 1 2)
    execute_process(COMMAND "${PROGRAM}" ${common} --threads ${run} --json "${WORK}/run${run}.json"
                    RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT status EQUAL 0)
      message(FATAL_ERROR "glassbox evaluate (run ${run}) failed with status ${status}:\n${out}${err}")
    endif()
    file(READ "${WORK}/run${run}.json" json${run})
  endforeach()
  # The fields of docs/json-schema.md (glassbox.evaluation).
  string(JSON schema GET "${json1}" schema)
  string(JSON results LENGTH "${json1}" results)
  if(NOT schema STREQUAL "glassbox.evaluation" OR NOT results EQUAL 7)
    message(FATAL_ERROR "expected schema glassbox.evaluation with 7 results (occlusion x 2 baselines, shapley-exact x 2, "
                        "saliency, integrated-gradients x pad, attention-rollout), got ${schema} with ${results}")
  endif()
  math(EXPR last "${results} - 1")
  set(seen "")
  foreach(i RANGE ${last})
    string(JSON method GET "${json1}" results ${i} method)
    string(JSON baseline GET "${json1}" results ${i} baseline)
    list(APPEND seen "${method}/${baseline}")
    foreach(field mean low high)
      string(JSON value GET "${json1}" results ${i} metrics auprc ${field})
      if(NOT value MATCHES "^[0-9.eE+-]+$" OR value LESS 0 OR value GREATER 1)
        message(FATAL_ERROR "${method}/${baseline}: metrics.auprc.${field} must be in [0, 1], got '${value}'")
      endif()
    endforeach()
    string(JSON low GET "${json1}" results ${i} metrics auprc low)
    string(JSON high GET "${json1}" results ${i} metrics auprc high)
    if(low GREATER high)
      message(FATAL_ERROR "${method}/${baseline}: the auprc interval [${low}, ${high}] is reversed")
    endif()
    foreach(path "evaluations" "seconds" "metrics;comprehensiveness;mean" "metrics;deletion_area;mean"
                 "metrics;infidelity;mean" "subsets;negated;inputs" "subsets;long;metrics;f1;mean" "curves;deletion")
      string(JSON value ERROR_VARIABLE missing GET "${json1}" results ${i} ${path})
      if(missing)
        message(FATAL_ERROR "${method}/${baseline}: missing ${path}: ${missing}")
      endif()
    endforeach()
  endforeach()
  foreach(expected "occlusion/pad" "occlusion/removal" "shapley_exact/removal" "saliency/none"
                   "integrated_gradients/pad" "attention_rollout/none")
    if(NOT expected IN_LIST seen)
      message(FATAL_ERROR "no result for ${expected} (got ${seen})")
    endif()
  endforeach()
  # integrated gradients has no removal baseline: it ran with pad only.
  if("integrated_gradients/removal" IN_LIST seen)
    message(FATAL_ERROR "integrated_gradients cannot take the removal baseline, but a result has it")
  endif()
  # Max-sensitivity applies to the gradient methods only.
  foreach(i RANGE ${last})
    string(JSON method GET "${json1}" results ${i} method)
    string(JSON n GET "${json1}" results ${i} metrics max_sensitivity n)
    if(method MATCHES "^(saliency|integrated_gradients)$" AND n EQUAL 0)
      message(FATAL_ERROR "${method}: max_sensitivity has no values")
    elseif(NOT method MATCHES "^(saliency|integrated_gradients)$" AND NOT n EQUAL 0)
      message(FATAL_ERROR "${method}: max_sensitivity should not apply, got ${n} values")
    endif()
  endforeach()
  # Determinism: the same seed gives the same document apart from the measured times.
  foreach(run 1 2)
    string(REGEX REPLACE "\"seconds\": [0-9.eE+-]+" "\"seconds\": 0" json${run} "${json${run}}")
  endforeach()
  if(NOT json1 STREQUAL json2)
    message(FATAL_ERROR "two runs with --seed 3 (1 and 2 threads) differ beyond the times: see ${WORK}/run1.json and "
                        "${WORK}/run2.json")
  endif()
  return()
endif()

set(eval_work "${glassbox_cli_work}/evaluate")
file(MAKE_DIRECTORY "${eval_work}")

add_test(NAME "cli: evaluate: JSON fields and determinism under --seed"
         COMMAND "${CMAKE_COMMAND}" "-DPROGRAM=$<TARGET_FILE:glassbox_cli>" "-DWORK=${eval_work}"
                 -P "${CMAKE_CURRENT_LIST_DIR}/evaluate.cmake")
set_tests_properties("cli: evaluate: JSON fields and determinism under --seed" PROPERTIES LABELS cli TIMEOUT 600)

glassbox_cli_test("evaluate: ranked table" ARGS evaluate --n 6 --methods feature-ablation,input-x-gradient,raw-attention
                  --baselines zero --resamples 100 --threads 1 --html "${eval_work}/evaluate.html"
                  PASS "glassbox evaluate: 6 inputs \\(generated reviews of seed 0\\).*feature-ablation +library defaults.*ranked by auprc \\(higher is better; mean \\[95% bootstrap interval\\]\\).*\n +1  [a-z-]+ .*\n +2  .*\n +3  .*\nauprc by subset.*agreement between methods")

glassbox_cli_test("evaluate: generate reviews" ARGS generate-data --n 5 --seed 9 --out "${eval_work}/reviews.jsonl")
set_tests_properties("cli: evaluate: generate reviews" PROPERTIES FIXTURES_SETUP eval_reviews)
glassbox_cli_test("evaluate --data" ARGS evaluate --data "${eval_work}/reviews.jsonl" --methods occlusion,attgrad
                  --baselines unk --resamples 100 --threads 1 --json -
                  PASS "\"source\": \"[^\"]*reviews.jsonl\".*\"method\": \"(occlusion|attgrad)\"")
set_tests_properties("cli: evaluate --data" PROPERTIES FIXTURES_REQUIRED eval_reviews)

glassbox_cli_test("error: evaluate unknown baseline" ARGS evaluate --n 2 --baselines pad,bogus FAIL
                  PASS "--baselines must be pad, unk, zero, removal, token:ID, token:WORD or an id, got 'bogus'")
glassbox_cli_test("error: evaluate unknown method" ARGS evaluate --n 2 --methods occlusion,nosuch FAIL
                  PASS "--methods: unknown method 'nosuch'")
glassbox_cli_test("error: evaluate unknown rank metric" ARGS evaluate --n 2 --rank-by accuracy FAIL
                  PASS "--rank-by must be one of auprc, .*, got 'accuracy'")

# A line the rule does not label brings its own rationale, target and foil.
file(WRITE "${eval_work}/own.jsonl"
     "{\"text\": \"the food was here . =>\", \"rationale\": [3], \"target\": \"positive\", \"foil\": \"negative\"}\n"
     "{\"text\": \"the food was good . =>\"}\n")
file(WRITE "${eval_work}/bad_rationale.jsonl" "{\"text\": \"the food was here . =>\", \"rationale\": [9]}\n")
glassbox_cli_test("evaluate --data own rationales" ARGS evaluate --data "${eval_work}/own.jsonl" --methods occlusion
                  --baselines pad --resamples 50 --threads 1
                  PASS "glassbox evaluate: 2 inputs \\([^)]*own.jsonl\\): plain 2,.*\n +1  occlusion \\(pad\\) +2 ")
glassbox_cli_test("error: evaluate rationale out of range" ARGS evaluate --data "${eval_work}/bad_rationale.jsonl" FAIL
                  PASS "bad_rationale.jsonl:1: \"rationale\" must be an array of token positions < 5")
