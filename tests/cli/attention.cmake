# glassbox attention and glassbox heads (issue 6): every method on the bundled model, the JSON and
# HTML outputs, and the errors of each option. attention_test.cpp checks the outputs against the
# library and the findings on the bundled model.
set(attention_review "the food was not good but the service was excellent . =>")

glassbox_cli_test("attention --help" ARGS attention --help
                  PASS "--method.*raw-attention, attention-rollout, attention-flow, attgrad, chefer-relevance, gradient-weighted-rollout.*--aggregation.*--layer.*--head.*--residual.*--json.*--html")
glassbox_cli_test("heads --help" ARGS heads --help PASS "--data.*--n.*--json.*--html")
glassbox_cli_test("attention raw" ARGS attention --text "${attention_review}" --method raw-attention
                  PASS "raw attention \\| 12 tokens \\| layer [0-9]+ of [0-9]+ \\| mean of [0-9]+ heads")
glassbox_cli_test("attention raw --layer --head" ARGS attention --text "${attention_review}" --method raw-attention --layer 0
                  --head 1 PASS "layer 0 of [0-9]+ \\| head 1 of")
glassbox_cli_test("attention rollout" ARGS attention --text "${attention_review}" --method attention-rollout
                  PASS "attention_rollout \\| 12 tokens \\| levels 0 to [0-9]+.*residual=0.5.*product=left.*\n.*\n.*position 11, '=>'.*\n +1\\. ")
glassbox_cli_test("attention rollout options" ARGS attention --text "${attention_review}" --method attention-rollout
                  --aggregation max --residual 0.25 --product right --layer 0
                  PASS "levels 0 to 1 \\| aggregation=max residual=0.25.*product=right")
glassbox_cli_test("attention flow" ARGS attention --text "${attention_review}" --method attention-flow --threads 1
                  PASS "attention_flow \\| 12 tokens.*sources=12.*matrix: rows = positions")
glassbox_cli_test("attention attgrad" ARGS attention --text "${attention_review}" --method attgrad --positive-only
                  PASS "attgrad .*positive_only=true.*\ntarget +log-probability of token [0-9]+ at position 11.*\nwhat the explained position draws on \\(position 11, '=>'\\)")
glassbox_cli_test("attention attgrad --position" ARGS attention --text "${attention_review}" --method attgrad --position 4
                  PASS "attgrad .*\ntarget +log-probability of token [0-9]+ at position 4 .*\nwhat the explained position draws on \\(position 4, 'good'\\)")
glassbox_cli_test("attention chefer --target" ARGS attention --tokens "173,113,180,26,5,2" --method chefer-relevance
                  --target negative PASS "chefer_relevance .*\ntarget +log-probability of token 4 at position 5 .*'negative'")
glassbox_cli_test("attention --position" ARGS attention --text "${attention_review}" --method attention-rollout --position 4
                  PASS "position 4, 'good'")
glassbox_cli_test("attention --json to stdout" ARGS attention --text "${attention_review}" --method attention-flow --json -
                  PASS "^{\n +\"schema\": \"glassbox.attention\",\n +\"version\": 2,\n +\"method\": \"attention_flow\"")
glassbox_cli_test("attention --json and --html" ARGS attention --text "${attention_review}" --method attention-rollout
                  --json "${glassbox_cli_work}/attention_rollout.json" --html "${glassbox_cli_work}/attention_rollout.html"
                  PASS "attention_rollout")
glassbox_cli_test("heads" ARGS heads --n 20 --no-ablation --json "${glassbox_cli_work}/heads.json"
                  --html "${glassbox_cli_work}/heads.html"
                  PASS "over 20 generated reviews of seed 2.*head importance.*normalised entropy.*pruning curve.*heads needed for 99% of the full accuracy: [0-9]+ of [0-9]+")
glassbox_cli_test("heads --json to stdout" ARGS heads --n 5 --json -
                  PASS "^{\n +\"schema\": \"glassbox.heads\",\n +\"version\": 1")
file(WRITE "${glassbox_cli_work}/heads_data.jsonl"
     "{\"token_ids\": [173, 113, 180, 26, 5, 2], \"label\": \"negative\"}\n"
     "{\"token_ids\": [5, 2], \"label\": 3}\n")
file(WRITE "${glassbox_cli_work}/heads_bad_label.jsonl" "{\"token_ids\": [5, 2], \"label\": \"scrumptious\"}\n")
file(WRITE "${glassbox_cli_work}/heads_bad_json.jsonl" "{\"token_ids\": [5, 2], \"label\": \n")
glassbox_cli_test("heads --data" ARGS heads --data "${glassbox_cli_work}/heads_data.jsonl"
                  PASS "over 2 examples of .*heads_data.jsonl.*accuracy among positive, negative")

glassbox_cli_test("error: attention unknown method" ARGS attention --text "good =>" --method lime FAIL
                  PASS "glassbox: error: --method: unknown method 'lime' \\(expected one of: raw-attention, attention-rollout, .*\\)")
glassbox_cli_test("error: attention without input" ARGS attention --method raw-attention FAIL
                  PASS "glassbox: error: the input is empty")
glassbox_cli_test("error: attention --layer out of range" ARGS attention --text "good =>" --method raw-attention --layer 99 FAIL
                  PASS "glassbox: error: --layer must be < [0-9]+ \\(the model's layers\\), got 99")
glassbox_cli_test("error: attention --head out of range" ARGS attention --text "good =>" --method raw-attention --head 99 FAIL
                  PASS "glassbox: error: --head must be < [0-9]+ \\(the model's heads\\), got 99")
glassbox_cli_test("error: attention --position out of range" ARGS attention --text "good =>" --method attention-rollout
                  --position 2 FAIL PASS "glassbox: error: --position must be < 2")
glassbox_cli_test("error: attention --head with rollout" ARGS attention --text "good =>" --method attention-rollout --head 0
                  FAIL PASS "glassbox: error: --head does not apply to --method attention-rollout \\(its options: --aggregation --residual --layer --product\\)")
glassbox_cli_test("error: attention --layer with chefer" ARGS attention --text "good =>" --method chefer-relevance --layer 0
                  FAIL PASS "glassbox: error: --layer does not apply to --method chefer-relevance \\(its options: none\\)")
glassbox_cli_test("error: attention unknown --target" ARGS attention --text "good =>" --method attgrad
                  --target scrumptious FAIL PASS "glassbox: error: --target: 'scrumptious' is neither")
glassbox_cli_test("error: attention bad residual" ARGS attention --text "good =>" --residual 2 FAIL
                  PASS "glassbox: error: glassbox::attention_rollout: residual must be in \\[0, 1\\], got 2")
glassbox_cli_test("error: heads missing data file" ARGS heads --data "${glassbox_cli_work}/no_such.jsonl" FAIL
                  PASS "glassbox: error: cannot read .*no_such.jsonl")
glassbox_cli_test("error: heads bad label" ARGS heads --data "${glassbox_cli_work}/heads_bad_label.jsonl" FAIL
                  PASS "glassbox: error: .*line 1: label: 'scrumptious' is neither")
glassbox_cli_test("error: heads bad JSON" ARGS heads --data "${glassbox_cli_work}/heads_bad_json.jsonl" FAIL
                  PASS "glassbox: error: .*line 1: is not valid JSON")

# Outputs against the library, the HTML size bound and the findings on the bundled model.
glassbox_add_test(attention_cli_test attention_test.cpp GPT2)
target_include_directories(attention_cli_test PRIVATE "${PROJECT_SOURCE_DIR}/apps/glassbox")
target_compile_definitions(attention_cli_test PRIVATE GLASSBOX_CLI="$<TARGET_FILE:glassbox_cli>"
                                                      GLASSBOX_CLI_WORK="${glassbox_cli_work}")
add_dependencies(attention_cli_test glassbox_cli)
