# glassbox influence fit|score|self (docs/influence.md, docs/cli.md "Influence"): on a tiny model
# trained here (one layer, width 8: about 1,800 parameters, so that exact influence runs), with 30
# training reviews (20% of labels flipped) and 2 query reviews written by generate-data. Every
# method runs and prints what it should; the outputs are written; the errors are one clear line.
set(influence_work "${glassbox_cli_work}/influence")
file(MAKE_DIRECTORY "${influence_work}")
set(influence_model "${influence_work}/model")
set(influence_train "${influence_work}/train.jsonl")
set(influence_queries "${influence_work}/queries.jsonl")
set(influence_small "${influence_work}/small.jsonl")  # exact, lissa and self-influence by cg: one solve per example
set(influence_factors "${influence_work}/factors.safetensors")
set(num "[-+]?[0-9.]+(e[-+][0-9]+)?")
set(entry "    #[0-9]+ +${num}  [^\n]+\n")

# Fixtures: the model (with 2 TracIn checkpoints), the data, the factors.
glassbox_cli_test("influence: setup model" ARGS train --out "${influence_model}" --layers 1 --heads 1 --width 8
                  --steps 6 --batch 2 --eval-size 0 --log-every 0 --save-checkpoints 2 PASS "wrote ")
set_tests_properties("cli: influence: setup model" PROPERTIES FIXTURES_SETUP influence_model)
glassbox_cli_test("influence: setup training data" ARGS generate-data --n 30 --noise 0.2 --seed 3
                  --out "${influence_train}")
glassbox_cli_test("influence: setup queries" ARGS generate-data --n 2 --seed 9 --out "${influence_queries}")
glassbox_cli_test("influence: setup small data" ARGS generate-data --n 4 --seed 5 --out "${influence_small}")
# Shards of an earlier run (another model: the setup retrains it) would be refused, rightly: start clean.
add_test(NAME "cli: influence: setup clean shards" COMMAND "${CMAKE_COMMAND}" -E rm -rf "${influence_work}/shards")
set_tests_properties("cli: influence: setup training data" "cli: influence: setup queries" "cli: influence: setup small data"
                     "cli: influence: setup clean shards"
                     PROPERTIES FIXTURES_SETUP influence_data)

glassbox_cli_test("influence fit" ARGS influence fit --model "${influence_model}" --data "${influence_train}"
                  --out "${influence_factors}"
                  PASS "fitted ekfac \\(sampled labels\\) on 30 training examples: 4 layers, [0-9]+ tracked parameters\nwrote ")
set_tests_properties("cli: influence fit" PROPERTIES FIXTURES_SETUP influence_factors
                     FIXTURES_REQUIRED "influence_model;influence_data")
glassbox_cli_test("influence fit --method diagonal --layers mlp" ARGS influence fit --model "${influence_model}"
                  --data "${influence_train}" --out "${influence_work}/diagonal.safetensors" --method diagonal
                  --layers mlp --fisher empirical
                  PASS "fitted diagonal \\(empirical labels\\) on 30 training examples: 2 layers")

# K-FAC scoring: one query, the outputs, resumable shards (the second run reads the first's shards).
foreach(run first second)
  glassbox_cli_test("influence score --factors (${run} run)" ARGS influence score --model "${influence_model}"
                    --data "${influence_train}" --factors "${influence_factors}" --query "the food was good . =>"
                    --top 3 --shards "${influence_work}/shards" --shard-size 8
                    --json "${influence_work}/score.json" --scores "${influence_work}/scores.safetensors"
                    --html "${influence_work}/score.html"
                    PASS "influence \\(ekfac\\) of 30 training examples on 1 query: method=ekfac .*\nquery 0: the food was good \\. => -> [a-z]+ \\(f = ${num}\\)\n  most helpful:\n${entry}${entry}${entry}  most harmful:\n${entry}${entry}${entry}wrote .*scores.safetensors \\(1 x 30 scores\\)")
endforeach()
set_tests_properties("cli: influence score --factors (second run)" PROPERTIES DEPENDS
                     "cli: influence score --factors (first run)")
glassbox_cli_test("influence score --factors --queries --query-rank" ARGS influence score --model "${influence_model}"
                  --data "${influence_train}" --factors "${influence_factors}" --queries "${influence_queries}"
                  --query-rank 1 --damping 0.001 --top 2
                  PASS "query_rank=1.*\nquery 0: .*\n  most helpful:\n${entry}${entry}  most harmful:\n${entry}${entry}query 1: ")
glassbox_cli_test("influence self --factors" ARGS influence self --model "${influence_model}" --data "${influence_train}"
                  --factors "${influence_factors}" --top 4 --json "${influence_work}/self.json"
                  --html "${influence_work}/self.html"
                  PASS "self-influence \\(ekfac\\) of 30 training examples: .*\n  highest self-influence:\n${entry}${entry}${entry}${entry}$")

# The flat-parameter methods (the tiny model is small enough to form H).
glassbox_cli_test("influence score --method exact" ARGS influence score --model "${influence_model}"
                  --data "${influence_small}" --queries "${influence_queries}" --method exact --hessian exact
                  --damping 0.5 --parameters h.0.mlp.c_proj --top 2 --json "${influence_work}/exact.json"
                  PASS "influence \\(exact\\) of 4 training examples on 2 queries: damping=0.5 hessian=exact parameters=264.*\n  eigenvalues of H: lowest ${num}, highest ${num}\nquery 0: ")
glassbox_cli_test("influence score --method cg" ARGS influence score --model "${influence_model}"
                  --data "${influence_train}" --queries "${influence_queries}" --method cg --damping 0.1 --top 2
                  PASS "influence \\(cg\\) .*\nquery 0: .*\n  solve: [0-9]+ iterations, relative residual ${num}\n  most helpful:")
glassbox_cli_test("influence score --method lissa" ARGS influence score --model "${influence_model}"
                  --data "${influence_small}" --queries "${influence_queries}" --method lissa --damping 0.1
                  --scale 10 --depth 100 --top 1
                  PASS "influence \\(lissa\\) .*\n  solve: [0-9]+ iterations")
glassbox_cli_test("influence score --method tracin" ARGS influence score --model "${influence_model}"
                  --data "${influence_train}" --query "the food was bad . =>" --label negative --method tracin
                  --checkpoints "${influence_model}/checkpoints" --parameters h.0.mlp,ln_f --top 2
                  PASS "influence \\(tracin\\) of 30 training examples on 1 query: checkpoints=2 parameters=568 .*\nquery 0: the food was bad \\. => -> negative")
glassbox_cli_test("influence self --method cg" ARGS influence self --model "${influence_model}"
                  --data "${influence_small}" --method cg --damping 0.1 --top 2
                  PASS "self-influence \\(cg\\) of 4 training examples: .*\n  highest self-influence:\n${entry}${entry}$")
set_tests_properties("cli: influence score --factors (first run)" "cli: influence score --factors (second run)"
                     "cli: influence score --factors --queries --query-rank" "cli: influence self --factors"
                     PROPERTIES FIXTURES_REQUIRED "influence_model;influence_data;influence_factors")
set_tests_properties("cli: influence fit --method diagonal --layers mlp" "cli: influence score --method exact"
                     "cli: influence score --method cg" "cli: influence score --method lissa"
                     "cli: influence score --method tracin" "cli: influence self --method cg"
                     PROPERTIES FIXTURES_REQUIRED "influence_model;influence_data")

# Errors: one line, naming what is wrong (a macro re-reads its arguments: no backslashes in `pass`).
set(influence_error_tests)
macro(influence_error name pass)
  glassbox_cli_test("error: influence ${name}" ARGS ${ARGN} FAIL PASS "${pass}")
  list(APPEND influence_error_tests "cli: error: influence ${name}")
endmacro()
set(tiny --model "${influence_model}" --data "${influence_train}")
influence_error("score without --factors or --method" "give exactly one of --factors F"
                influence score ${tiny} --query "the food was good . =>")
influence_error("score with --factors and --method" "give exactly one of --factors F"
                influence score ${tiny} --query "the food was good . =>" --factors "${influence_factors}" --method cg)
influence_error("method option with --factors" "--depth does not apply to --factors"
                influence score ${tiny} --query "the food was good . =>" --factors "${influence_factors}" --depth 3)
influence_error("option of another method" "--depth does not apply to --method cg"
                influence score ${tiny} --query "the food was good . =>" --method cg --depth 3)
influence_error("unknown method" "--method: unknown method 'kfac' .expected one of: exact, cg, lissa, tracin."
                influence score ${tiny} --query "the food was good . =>" --method kfac)
influence_error("tracin without checkpoints" "--method tracin needs --checkpoints DIR"
                influence score ${tiny} --query "the food was good . =>" --method tracin)
influence_error("fit option of another method" "--fisher does not apply to --method identity"
                influence fit ${tiny} --out "${influence_work}/x.safetensors" --method identity --fisher empirical)
influence_error("bad --hessian" "--hessian must be one of"
                influence score ${tiny} --query "the food was good . =>" --method exact --hessian full)
influence_error("negative damping" "--damping must be >= 0, got -1"
                influence fit ${tiny} --out "${influence_work}/x.safetensors" --damping -1)
influence_error("factors of another model" "the factors were fitted on a model with [0-9]+ parameters"
                influence score --data "${influence_train}" --factors "${influence_factors}" --query "the food was good . =>")
influence_error("no query" "give exactly one of --query TEXT and --queries FILE"
                influence score ${tiny} --factors "${influence_factors}")
influence_error("unknown parameter tensor" "--parameters: 'h.7' names no parameter tensor of the model"
                influence score ${tiny} --query "the food was good . =>" --method cg --parameters h.0.mlp,h.7)
influence_error("exact beyond its limit" "max_parameters"
                influence score ${tiny} --query "the food was good . =>" --method exact --max-parameters 100)
set_tests_properties(${influence_error_tests} PROPERTIES FIXTURES_REQUIRED "influence_model;influence_data;influence_factors")

# `mpirun -np 2 glassbox influence ...` when the program was built with MPI: fitting and scoring
# shard the training set; rank 0 prints and writes.
find_package(MPI QUIET COMPONENTS CXX)
if(MPI_CXX_FOUND AND MPIEXEC_EXECUTABLE)
  set(influence_mpirun -np 2 --oversubscribe)
  execute_process(COMMAND id -u OUTPUT_VARIABLE influence_uid OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(influence_uid STREQUAL "0")
    list(APPEND influence_mpirun --allow-run-as-root)
  endif()
  foreach(step fit score)
    if(step STREQUAL "fit")
      set(args influence fit ${tiny} --out "${influence_work}/mpi_factors.safetensors")
      set(pass "fitted ekfac \\(sampled labels\\) on 30 training examples over 2 ranks: 4 layers")
    else()
      set(args influence score ${tiny} --factors "${influence_work}/mpi_factors.safetensors"
               --query "the food was good . =>" --top 2)
      set(pass "influence \\(ekfac\\) of 30 training examples on 1 query: .*ranks=2")
    endif()
    add_test(NAME "cli: mpirun influence ${step}"
             COMMAND "${CMAKE_COMMAND}" "-DPROGRAM=${MPIEXEC_EXECUTABLE}"
                     "-DARGS=${influence_mpirun};$<TARGET_FILE:glassbox_cli>;${args}" "-DEXPECT_FAIL=" "-DPASS=${pass}"
                     -P "${CMAKE_CURRENT_LIST_DIR}/run_cli.cmake"
             WORKING_DIRECTORY "${glassbox_cli_work}")
    set_tests_properties("cli: mpirun influence ${step}" PROPERTIES LABELS "cli;mpi" TIMEOUT 600
                         FIXTURES_REQUIRED "influence_model;influence_data")
  endforeach()
  set_tests_properties("cli: mpirun influence fit" PROPERTIES FIXTURES_SETUP influence_mpi_factors)
  set_tests_properties("cli: mpirun influence score" PROPERTIES FIXTURES_REQUIRED
                       "influence_model;influence_data;influence_mpi_factors")
endif()
