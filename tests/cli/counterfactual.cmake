# glassbox counterfactual (docs/cli.md "Counterfactuals"): the table, the glassbox.counterfactual
# document and its properties, the HTML page, and the errors. Included by CMakeLists.txt to add the
# tests; run with -P (script mode, PROGRAM and WORK set) it is the JSON check itself, on the negated
# review "the food was not good . =>" with the bundled model:
#   - beam (default) and greedy search: found, at least one edit, the new prediction differs from the
#     original; every edit's `from` is the original token at its position and `to` the edited one (and
#     they differ), the marker (position 6) is never edited, every other token is unchanged;
#   - the HTML page shows each edited token highlighted, with the original token on hover;
#   - --target positive --threshold 0.5: a threshold goal, p(positive) below 0.5 before and >= 0.5 after.
if(CMAKE_SCRIPT_MODE_FILE)
  cmake_minimum_required(VERSION 3.23)  # string(JSON) in script mode

  include("${CMAKE_CURRENT_LIST_DIR}/script_support.cmake")

  # Checks one label-flip document of the review; sets `first_edit` (position;from;to) in the caller.
  function(check_document file search)
    file(READ "${file}" j)
    foreach(key schema version method search goal original edited original_tokens edited_tokens original_ids
                edited_ids edits found minimal original_prediction new_prediction original_value new_value
                model_calls options)
      string(JSON value ERROR_VARIABLE missing GET "${j}" ${key})
      if(missing)
        message(FATAL_ERROR "counterfactual JSON (${search}): missing key ${key}")
      endif()
    endforeach()
    string(JSON schema GET "${j}" schema)
    string(JSON version GET "${j}" version)
    string(JSON got_search GET "${j}" search)
    string(JSON original GET "${j}" original)
    string(JSON edited GET "${j}" edited)
    string(JSON found GET "${j}" found)
    string(JSON minimal GET "${j}" minimal)
    string(JSON before GET "${j}" original_prediction)
    string(JSON after GET "${j}" new_prediction)
    string(JSON calls GET "${j}" model_calls)
    string(JSON n_edits LENGTH "${j}" edits)
    string(JSON kind GET "${j}" goal kind)
    if(NOT schema STREQUAL "glassbox.counterfactual" OR NOT version EQUAL 1 OR NOT got_search STREQUAL "${search}"
       OR NOT kind STREQUAL "label_flip")
      message(FATAL_ERROR "counterfactual JSON: schema ${schema} v${version}, search ${got_search}, goal ${kind}; "
                          "expected glassbox.counterfactual v1, ${search}, label_flip")
    endif()
    if(NOT original STREQUAL "the food was not good . =>")
      message(FATAL_ERROR "counterfactual JSON (${search}): original '${original}'")
    endif()
    if(NOT found OR NOT minimal OR n_edits LESS 1 OR before STREQUAL after OR edited STREQUAL original
       OR calls LESS 2)
      message(FATAL_ERROR "counterfactual JSON (${search}): found ${found}, minimal ${minimal}, ${n_edits} edits, "
                          "prediction ${before} -> ${after}, edited '${edited}', ${calls} model calls")
    endif()
    if(NOT (before STREQUAL "positive" OR before STREQUAL "negative")
       OR NOT (after STREQUAL "positive" OR after STREQUAL "negative"))
      message(FATAL_ERROR "counterfactual JSON (${search}): predictions ${before} -> ${after} are not the labels")
    endif()
    string(JSON n_tokens LENGTH "${j}" original_tokens)
    string(JSON n_edited LENGTH "${j}" edited_tokens)
    if(NOT n_tokens EQUAL 7 OR NOT n_edited EQUAL 7)
      message(FATAL_ERROR "counterfactual JSON (${search}): ${n_tokens} original and ${n_edited} edited tokens")
    endif()
    set(edited_positions "")
    math(EXPR last "${n_edits} - 1")
    foreach(k RANGE ${last})
      string(JSON position GET "${j}" edits ${k} position)
      string(JSON from GET "${j}" edits ${k} from)
      string(JSON to GET "${j}" edits ${k} to)
      string(JSON was GET "${j}" original_tokens ${position})
      string(JSON now GET "${j}" edited_tokens ${position})
      if(NOT from STREQUAL was OR NOT to STREQUAL now OR from STREQUAL to OR position EQUAL 6)
        message(FATAL_ERROR "counterfactual JSON (${search}): edit ${k} at ${position} '${from}' -> '${to}', "
                            "tokens there '${was}' -> '${now}' (the marker at 6 is fixed)")
      endif()
      list(APPEND edited_positions ${position})
      if(k EQUAL 0)
        set(first_edit "${position};${from};${to}" PARENT_SCOPE)
      endif()
    endforeach()
    foreach(i RANGE 6)
      if(NOT i IN_LIST edited_positions)
        string(JSON was GET "${j}" original_tokens ${i})
        string(JSON now GET "${j}" edited_tokens ${i})
        if(NOT was STREQUAL now)
          message(FATAL_ERROR "counterfactual JSON (${search}): token ${i} changed ('${was}' -> '${now}') without an edit")
        endif()
      endif()
    endforeach()
  endfunction()

  run_glassbox(counterfactual --text "the food was not good . =>" --json "${WORK}/beam.json" --html "${WORK}/beam.html")
  check_document("${WORK}/beam.json" beam)
  list(GET first_edit 1 from)
  list(GET first_edit 2 to)
  file(READ "${WORK}/beam.html" html)
  string(FIND "${html}" "<span class=\"tok edit\" title=\"was ${from}\">${to}</span>" at)
  string(FIND "${html}" "<span class=\"tok removed\" title=\"becomes ${to}\">${from}</span>" at_original)
  if(at LESS 0 OR at_original LESS 0)
    message(FATAL_ERROR "counterfactual --html: the edit '${from}' -> '${to}' is not highlighted in ${WORK}/beam.html")
  endif()

  run_glassbox(counterfactual --text "the food was not good . =>" --search greedy --json "${WORK}/greedy.json")
  check_document("${WORK}/greedy.json" greedy)

  run_glassbox(counterfactual --text "the food was not good . =>" --target positive --threshold 0.5
               --json "${WORK}/threshold.json")
  file(READ "${WORK}/threshold.json" j)
  string(JSON kind GET "${j}" goal kind)
  string(JSON target GET "${j}" goal target)
  string(JSON found GET "${j}" found)
  string(JSON v0 GET "${j}" original_value)
  string(JSON v1 GET "${j}" new_value)
  string(JSON p0 TYPE "${j}" original_prediction)
  string(JSON p1 TYPE "${j}" new_prediction)
  if(NOT kind STREQUAL "threshold" OR NOT target STREQUAL "positive" OR NOT found OR NOT p0 STREQUAL "NULL"
     OR NOT p1 STREQUAL "NULL" OR NOT v0 LESS 0.5 OR v1 LESS 0.5)
    message(FATAL_ERROR "counterfactual --target positive --threshold 0.5: goal ${kind} on ${target}, found ${found}, "
                        "p(positive) ${v0} -> ${v1}, predictions ${p0} ${p1}; expected below 0.5 -> at least 0.5")
  endif()
  return()
endif()

set(counterfactual_work "${glassbox_cli_work}/counterfactual")
file(MAKE_DIRECTORY "${counterfactual_work}")
add_test(NAME "cli: counterfactual: JSON document, edits and HTML highlight"
         COMMAND "${CMAKE_COMMAND}" "-DPROGRAM=$<TARGET_FILE:glassbox_cli>" "-DWORK=${counterfactual_work}"
                 -P "${CMAKE_CURRENT_LIST_DIR}/counterfactual.cmake")
set_tests_properties("cli: counterfactual: JSON document, edits and HTML highlight" PROPERTIES LABELS cli TIMEOUT 600)

glassbox_cli_test("counterfactual --help" ARGS counterfactual --help
                  PASS "--text.*--tokens.*--target.*--threshold.*--max-edits.*--search.*--beam-width.*--candidates.*--json.*--html")
glassbox_cli_test("counterfactual" ARGS counterfactual --text "the food was not good . =>"
                  PASS "goal      the label \\(positive vs negative\\) at the last position flips\noriginal  the food was not good \\. =>   prediction negative\nedited    [a-z .]+ =>   prediction positive\n[0-9]+ edits?, minimal \\(no edit can be dropped\\) \\(beam search, [0-9]+ model calls\\):\nposition  from +to\n +[0-5]  [a-z<>]+ +[a-z<>]+\n")
glassbox_cli_test("counterfactual deletion only" ARGS counterfactual --text "the food was good . =>" --candidates "<pad>"
                  --max-edits 4 PASS "original  the food was good \\. =>   prediction positive\nedited    .*\nposition  from +to\n( +[0-5]  [a-z.]+ +<pad>\n)+$")
glassbox_cli_test("error: counterfactual --max-edits 0" ARGS counterfactual --text "the food was not good . =>"
                  --max-edits 0 FAIL PASS "--max-edits must be >= 1, got 0")
glassbox_cli_test("error: counterfactual unknown target" ARGS counterfactual --text "the food was not good . =>"
                  --target nosuchword FAIL PASS "--target: 'nosuchword' is neither a word of the vocabulary nor a token id")
glassbox_cli_test("error: counterfactual --threshold without --target" ARGS counterfactual
                  --text "the food was not good . =>" --threshold 0.3 FAIL PASS "--threshold requires --target")
glassbox_cli_test("error: counterfactual --search" ARGS counterfactual --text "the food was not good . =>"
                  --search random FAIL PASS "--search: random not in \\{beam,greedy\\}")
