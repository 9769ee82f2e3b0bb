# The frame of the command line: --help, info, predict, generate-data, train, and the error
# convention (one "glassbox: error:" line, non-zero exit) for missing and malformed models, unknown
# words, token ids out of range and empty input.
set(models "${PROJECT_SOURCE_DIR}/models")
file(WRITE "${glassbox_cli_work}/malformed.safetensors" "this is not a safetensors file")
file(MAKE_DIRECTORY "${glassbox_cli_work}/empty_model_dir")

glassbox_cli_test("help" ARGS --help PASS "info.*predict.*generate-data.*train")
glassbox_cli_test("predict --help" ARGS predict --help PASS "--text.*--tokens.*--top.*--json")
glassbox_cli_test("no subcommand is a usage error" ARGS FAIL PASS "subcommand")
glassbox_cli_test("info on the bundled model" ARGS info PASS "parameters.*vocabulary +224 tokens")
glassbox_cli_test("info --model" ARGS info --model "${models}/reviews" PASS "GPT-2: [0-9]+ layers")
glassbox_cli_test("predict a review" ARGS predict --text "the food was not good . =>" --top 2
                  PASS "1\\. (positive|negative) .*\n +2\\. (positive|negative)")
glassbox_cli_test("predict --tokens" ARGS predict --tokens "173,113,180,26,5,2" PASS "next token after position 5")

glassbox_cli_test("error: missing model file" ARGS info --model "${glassbox_cli_work}/no_such_model" FAIL
                  PASS "glassbox: error: model .*no_such_model does not exist")
glassbox_cli_test("error: directory without a model" ARGS info --model "${glassbox_cli_work}/empty_model_dir" FAIL
                  PASS "glassbox: error: .*model.safetensors")
glassbox_cli_test("error: malformed model file" ARGS info --model "${glassbox_cli_work}/malformed.safetensors" FAIL
                  PASS "glassbox: error: .*malformed.safetensors")
glassbox_cli_test("error: unknown word" ARGS predict --text "the food was scrumptious" FAIL
                  PASS "glassbox: error: unknown word 'scrumptious'")
glassbox_cli_test("error: token id out of range" ARGS predict --tokens "5,224" FAIL
                  PASS "glassbox: error: token id 224 is out of range \\(the vocabulary has 224 tokens\\)")
glassbox_cli_test("error: negative token id" ARGS predict --tokens "5,-1" FAIL PASS "glassbox: error: .*out of range")
glassbox_cli_test("error: not a number" ARGS predict --tokens "5,x" FAIL PASS "glassbox: error: --tokens: 'x' is not")
glassbox_cli_test("error: no input" ARGS predict FAIL PASS "glassbox: error: the input is empty")
glassbox_cli_test("error: both inputs" ARGS predict --text "good" --tokens 1 FAIL PASS "glassbox: error: .*excludes")
glassbox_cli_test("error: bad number" ARGS predict --text "good" --top zero FAIL PASS "glassbox: error: .*top")
glassbox_cli_test("error: bad noise" ARGS generate-data --n 3 --seed 1 --noise 2 --out - FAIL
                  PASS "glassbox: error: .*noise")
glassbox_cli_test("error: unwritable output" ARGS generate-data --n 3 --out "${glassbox_cli_work}/no/such/dir/x.jsonl"
                  FAIL PASS "glassbox: error: cannot write")
glassbox_cli_test("error: train with a bad recipe file" ARGS train --out "${glassbox_cli_work}/bad_train"
                  --recipe "${glassbox_cli_work}/malformed.safetensors" FAIL PASS "glassbox: error: recipe .* is not valid JSON")
