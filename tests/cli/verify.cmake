# glassbox verify (issue 12): the adapter conformance kit on the bundled model in float and double,
# its JSON, its exit status when a check fails, and the errors of its options.
#
# In script mode (cmake -P verify.cmake, as the test "cli: verify exit status" runs it) this file
# runs `glassbox verify` with tolerances a billion times tighter, so that finite-difference checks
# fail, and requires exit status 1, the table with FAIL rows on stdout and one
# "glassbox: error:" line on stderr naming the failed checks.
if(CMAKE_SCRIPT_MODE_FILE)
  execute_process(COMMAND "${PROGRAM}" verify --tolerance-scale 1e-9 RESULT_VARIABLE status OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT status EQUAL 1)
    message(FATAL_ERROR "glassbox verify --tolerance-scale 1e-9: expected exit status 1, got ${status}\n${out}${err}")
  endif()
  # Which checks fail depends on the build (a check whose error is exactly 0 passes any tolerance:
  # e.g. the finite-difference checks subtract what the differences cannot resolve): at least one does.
  if(NOT out MATCHES "vs finite differences +[A-Za-z]+ +[0-9.e+-]+ +<= [0-9.e+-]+ +FAIL\n"
     OR NOT out MATCHES "logits shape +Model .* pass\n" OR NOT out MATCHES "\nresult: FAIL \\([0-9]+ passed, [0-9]+ failed")
    message(FATAL_ERROR "glassbox verify --tolerance-scale 1e-9: unexpected table:\n${out}")
  endif()
  if(NOT err MATCHES "^glassbox: error: [0-9]+ of [0-9]+ checks failed: .*vs finite differences.*\n$")
    message(FATAL_ERROR "glassbox verify --tolerance-scale 1e-9: unexpected stderr:\n${err}")
  endif()
  return()
endif()

glassbox_cli_test("verify --help" ARGS verify --help
                  PASS "--model.*--text.*--tokens.*--precision.*--seed.*--directions.*--tolerance-scale.*--json")
glassbox_cli_test("verify" ARGS verify
                  PASS "adapter check: float model, 8 tokens.*causal\n.*embedding_gradient vs finite differences +DifferentiableModel .* pass\n.*kfac_statistics = loss_gradient weight blocks .* pass\n.*fast paths the library takes:.*logits_batch.*\nresult: PASS \\([0-9]+ passed, 0 failed, 0 skipped\\)")
glassbox_cli_test("verify --precision double" ARGS verify --precision double --text "the food was not good . =>"
                  PASS "adapter check: double model, 7 tokens.*embedding_gradient vs finite differences .* <= 1.0e-06 +pass\n.*\nresult: PASS")
glassbox_cli_test("verify --tokens --seed --directions" ARGS verify --tokens "5,2" --seed 3 --directions 2
                  PASS "adapter check: float model, 2 tokens.*result: PASS")
glassbox_cli_test("verify --json to stdout" ARGS verify --json -
                  PASS "^{\n +\"schema\": \"glassbox.verify\",\n +\"version\": 1,.*\"passed\": true,.*\"checks\": \\[\n +{\n +\"name\": \"logits shape\",\n +\"rung\": \"Model\",\n +\"status\": \"passed\"")
glassbox_cli_test("verify --json file" ARGS verify --json "${glassbox_cli_work}/verify.json" PASS "result: PASS")
add_test(NAME "cli: verify exit status" COMMAND "${CMAKE_COMMAND}" "-DPROGRAM=$<TARGET_FILE:glassbox_cli>"
                                                -P "${CMAKE_CURRENT_LIST_FILE}"
         WORKING_DIRECTORY "${glassbox_cli_work}")
set_tests_properties("cli: verify exit status" PROPERTIES LABELS cli TIMEOUT 600)

glassbox_cli_test("error: verify --precision" ARGS verify --precision half FAIL PASS "glassbox: error: --precision")
glassbox_cli_test("error: verify --directions 0" ARGS verify --directions 0 FAIL PASS "glassbox: error: --directions")
glassbox_cli_test("error: verify token out of range" ARGS verify --tokens "5,9999" FAIL
                  PASS "glassbox: error: token id 9999 is out of range")
glassbox_cli_test("error: verify unknown word" ARGS verify --text "the scrumptious food" FAIL
                  PASS "glassbox: error: unknown word 'scrumptious'")
