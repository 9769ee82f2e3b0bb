# glassbox explain: every method runs on the bundled model and prints what it should (the target,
# f(x), the completeness gap where the method has one, the evaluation count, the ground truth of
# the review language), generation attribution, --method all, the outputs, and the errors.
# explain_test.cpp checks the JSON against the library and the HTML page.
#
# The tests use the bundled model (no --model). Configure with
# -DGLASSBOX_EXPLAIN_TEST_MODEL=<dir> to run them against another review model instead.
set(explain_model "")
if(GLASSBOX_EXPLAIN_TEST_MODEL)
  set(explain_model --model "${GLASSBOX_EXPLAIN_TEST_MODEL}")
endif()
set(review "the food was not good . =>")
set(target_line "target +[a-z-]+ of '[^']+' \\(id [0-9]+\\) after position 6 '=>'")
set(truth_line "truth +label negative \\(decided, negated\\); rationale \"not good\" \\(positions 3, 4\\)")
set(rank_line "truth: deciding word 'good' \\(position 4\\) ranks [1-6] of 6 review tokens by \\|score\\|; top 2 by \\|score\\|: [0-2] in the rationale")
# The heatmap without colour (stdout is not a terminal): word[+score] for each of the 7 tokens
# (wrapped at 100 columns).
set(heat "the\\[[-+][0-9.e+-]+\\][ \n]+food\\[[-+][0-9.e+-]+\\][ \n]+was\\[[-+][0-9.e+-]+\\][ \n]+not\\[[-+][0-9.e+-]+\\][ \n]+good\\[[-+][0-9.e+-]+\\][ \n]+\\.\\[[-+][0-9.e+-]+\\][ \n]+=>\\[[-+][0-9.e+-]+\\]")
set(num "[-+]?[0-9.]+(e[-+][0-9]+)?")

glassbox_cli_test("explain --help" ARGS explain --help
                  PASS "--method.*occlusion, feature-ablation, lime, kernel-shap, shapley-sampling, shapley-exact, saliency, input-x-gradient, integrated-gradients, gradient-shap, noise-tunnel, layer-integrated-gradients, layer-gradient-x-activation, or all.*--target.*--contrast.*--continuation.*--window.*--baseline.*--samples.*--seed.*--steps.*--layer.*--batch-size.*--threads.*--data.*--out.*--resume.*--json.*--html")

# The default: integrated gradients (50 Gauss-Legendre steps, zero baseline) of the top next token.
glassbox_cli_test("explain: default method and target" ARGS explain ${explain_model} --text "${review}"
                  PASS "input +the food was not good \\. =>\n${target_line} \\(p = ${num}\\), the model's top prediction\n${truth_line}\n\nintegrated_gradients \\| log-probability of token [0-9]+ at the last position \\| f\\(x\\) = ${num} \\| f\\(baseline\\) = ${num} \\| delta = ${num} \\| 52 evaluations\n${heat} *\n +pos +token +score\n.*${rank_line}\noptions: steps=50 rule=gauss_legendre baseline=zero")

# Every method, with its main options; the header names the method and its evaluation count.
glassbox_cli_test("explain: occlusion" ARGS explain ${explain_model} --text "${review}" --method occlusion --window 2 --stride 1
                  PASS "occlusion \\| .*f\\(baseline\\) = ${num} \\| 8 evaluations\n${heat}.*options: window=2 stride=1 baseline=pad")
glassbox_cli_test("explain: feature ablation with word groups" ARGS explain ${explain_model} --text "${review}"
                  --method feature-ablation --groups "0,0,0,1,1,2,-1"
                  PASS "feature_ablation \\| .*\\| 5 evaluations\n${heat}.*feature_map=0,0,0,1,1,2,-1")
glassbox_cli_test("explain: lime" ARGS explain ${explain_model} --text "${review}" --method lime --samples 40 --seed 3 --surrogate lasso
                  PASS "lime \\| .*\\| 42 evaluations\n${heat}.*n_samples=40 .*surrogate=lasso.*seed=3.*surrogate_r2=")
glassbox_cli_test("explain: kernel shap (exact budget)" ARGS explain ${explain_model} --text "${review}" --method kernel-shap
                  PASS "kernel_shap \\| .*delta = -?[0-9.e-]+ \\| 128 evaluations\n${heat}.*exact=true")
glassbox_cli_test("explain: kernel shap (sampled)" ARGS explain ${explain_model} --text "${review}" --method kernel-shap
                  --samples 40 --seed 9 --unpaired PASS "kernel_shap \\| .*\\| 42 evaluations\n.*paired=false seed=9")
glassbox_cli_test("explain: shapley sampling" ARGS explain ${explain_model} --text "${review}" --method shapley-sampling
                  --samples 10 --antithetic PASS "shapley_sampling \\| .*delta = .* \\| 62 evaluations\n${heat}.*standard errors: mean ${num}, max ${num}\n.*antithetic=true")
glassbox_cli_test("explain: exact shapley" ARGS explain ${explain_model} --text "${review}" --method shapley-exact --baseline unk
                  PASS "shapley_exact \\| .*delta = .* \\| 128 evaluations\n${heat}.*baseline=token 1")
glassbox_cli_test("explain: saliency" ARGS explain ${explain_model} --text "${review}" --method saliency --absolute=false
                  --aggregation sum PASS "saliency \\| .*f\\(x\\) = ${num} \\| 1 evaluations\n${heat}.*absolute=false aggregation=sum")
glassbox_cli_test("explain: input x gradient" ARGS explain ${explain_model} --text "${review}" --method input_x_gradient
                  PASS "input_x_gradient \\| .*\\| 1 evaluations\n${heat}")
glassbox_cli_test("explain: integrated gradients options" ARGS explain ${explain_model} --text "${review}"
                  --method integrated-gradients --steps 16 --rule riemann-trapezoid --baseline pad --batch-size 5 --threads 1
                  PASS "integrated_gradients \\| .*delta = ${num} \\| 18 evaluations\n${heat}.*steps=16 rule=riemann_trapezoid baseline=pad .*batch_size=5 threads=1")
glassbox_cli_test("explain: integrated gradients adaptive" ARGS explain ${explain_model} --text "${review}" --steps 4
                  --adaptive --tolerance 1e-4 PASS "integrated_gradients \\| .*adaptive=true .*steps_used=[0-9]+")
glassbox_cli_test("explain: expected gradients (several baselines)" ARGS explain ${explain_model} --text "${review}"
                  --steps 8 --baseline "zero,pad,unk" PASS "integrated_gradients \\| .*baseline=zero; pad; token 1 baselines=3")
glassbox_cli_test("explain: gradient shap" ARGS explain ${explain_model} --text "${review}" --method gradient-shap
                  --samples 6 --stdev 0.1 --baseline zero,pad --seed 4 PASS "gradient_shap \\| .*delta = .* \\| [0-9]+ evaluations\n${heat}.*samples=6 stdev=0.1")
glassbox_cli_test("explain: noise tunnel (smoothgrad)" ARGS explain ${explain_model} --text "${review}" --method noise-tunnel
                  PASS "noise_tunnel \\| .*\\| 6 evaluations\n${heat}.*type=smoothgrad samples=5 stdev=1\\.0 seed=0 inner_method=saliency")
glassbox_cli_test("explain: vargrad over integrated gradients" ARGS explain ${explain_model} --text "${review}"
                  --method noise-tunnel --inner integrated-gradients --nt-type vargrad --samples 3 --stdev 0.05 --steps 4
                  PASS "noise_tunnel \\| .*\\| [0-9]+ evaluations\n${heat}.*inner_method=integrated_gradients inner.steps=4")
glassbox_cli_test("explain: layer integrated gradients" ARGS explain ${explain_model} --text "${review}"
                  --method layer-integrated-gradients --layer 2 --steps 8
                  PASS "layer_integrated_gradients \\| .*delta = ${num} \\| [0-9]+ evaluations\n${heat}.*layer=2 steps=8")
glassbox_cli_test("explain: layer gradient x activation" ARGS explain ${explain_model} --text "${review}"
                  --method layer-gradient-x-activation --layer 1
                  PASS "layer_gradient_x_activation \\| .*\\| 2 evaluations\n${heat}.*options: layer=1 aggregation=sum")

# Targets.
glassbox_cli_test("explain: --target and --target-kind logit" ARGS explain ${explain_model} --text "${review}" --target negative
                  --target-kind logit --method occlusion
                  PASS "target +logit of 'negative' \\(id 4\\) after position 6 '=>' \\(p = ${num}\\)\n.*occlusion \\| logit of token 4 at the last position")
glassbox_cli_test("explain: contrastive target" ARGS explain ${explain_model} --text "${review}" --target negative
                  --contrast positive --method input-x-gradient
                  PASS "target +log-probability of 'negative' \\(id 4\\) minus 'positive' \\(id 3\\) .*input_x_gradient \\| contrast of log-probability: token 4 minus token 3")
glassbox_cli_test("explain: --tokens and --position" ARGS explain ${explain_model} --tokens "173,113,180,26,29,5,2"
                  --position -2 --target-id 5 --method saliency
                  PASS "target +log-probability of '\\.' \\(id 5\\) after position 5 '\\.' .*saliency \\| log-probability of token 5 at position -2")
glassbox_cli_test("explain: no ground truth without the marker" ARGS explain ${explain_model} --text "the food was"
                  --method saliency PASS "^input +the food was\ntarget[^\n]*\n\nsaliency")

# Colour on request; ids without a vocabulary (the model copied without its vocab.txt).
glassbox_cli_test("explain: --color always" ARGS explain ${explain_model} --text "${review}" --method saliency --color always
                  PASS "48;2;[0-9]+;[0-9]+;[0-9]+m[^ ]*38;2;[0-9]+;[0-9]+;[0-9]+m not ")
if(GLASSBOX_EXPLAIN_TEST_MODEL)
  set(explain_weights "${GLASSBOX_EXPLAIN_TEST_MODEL}/model.safetensors")
else()
  set(explain_weights "${PROJECT_SOURCE_DIR}/models/reviews/model.safetensors")
endif()
if(EXISTS "${explain_weights}")
  file(COPY "${explain_weights}" DESTINATION "${glassbox_cli_work}/explain_no_vocabulary")
  set(no_vocabulary --model "${glassbox_cli_work}/explain_no_vocabulary")
  glassbox_cli_test("explain: ids without a vocabulary" ARGS explain ${no_vocabulary} --tokens "173,113,180,9,29,5,2"
                    --method occlusion --target-id 4
                    PASS "^input +#173 #113 #180 #9 #29 #5 #2\ntarget +log-probability of '#4' \\(id 4\\) after position 6 '#2' \\(p = ${num}\\)\n\noccl")
  glassbox_cli_test("explain error: a target word without a vocabulary" ARGS explain ${no_vocabulary} --tokens "173,2"
                    --target negative FAIL PASS "glassbox: error: --target: 'negative' is neither a word of the vocabulary \\(the model has no vocab.txt\\) nor a token id")
endif()

# Generation attribution: the [generated, source] matrix.
glassbox_cli_test("explain: generation (continuation)" ARGS explain ${explain_model} --text "the food was good . =>"
                  --continuation "positive" --method integrated-gradients --steps 8
                  PASS "prompt +the food was good \\. =>\ngenerated +positive \\(teacher forced\\)\ntarget +log-probability of each generated token\nmethod +integrated_gradients \\| 10 model evaluations\n\ngenerated +the +food +was +good +\\. +=> +positive +f +delta\npositive +${num} +${num} +${num} +${num} +${num} +${num} +\\. +${num} +${num}\n")
glassbox_cli_test("explain: generation (greedy, contrastive)" ARGS explain ${explain_model} --text "the food was good"
                  --generate 2 --method occlusion --contrast "bad"
                  PASS "generated +[^ ]+ [^ ]+ \\(greedy\\)\ntarget +log-probability of each generated token minus that of its foil \\(bad bad\\)\nmethod +occlusion \\| [0-9]+ model evaluations.*contrastive=true generated_greedily=true new_tokens=2")

# Every method at once.
glassbox_cli_test("explain: --method all" ARGS explain ${explain_model} --text "${review}" --method all --layer 2
                  PASS "method +the +food +was +not +good +\\. +=> +delta +evals +rank +rationale\noccl.*\nfeature-ablation.*\nlime.*\nkernel-shap.*\nshapley-sampling.*\nshapley-exact.*\nsaliency.*\ninput-x-gradient.*\nintegrated-gradients.*\ngradient-shap.*\nnoise-tunnel.*\nlayer-integrated-gradients.*\nlayer-gradient-x-activation.*\nrank: the deciding word's rank by \\|score\\| among the 6 review tokens; rationale: how many of the top 2 tokens by \\|score\\| are in the rationale")

# Outputs: JSON on stdout (and nothing else), files (checked in explain_test.cpp).
glassbox_cli_test("explain: --json -" ARGS explain ${explain_model} --text "${review}" --method shapley-exact --json -
                  PASS "^[{]\n  \"schema\": \"glassbox.attribution\",\n  \"version\": 1,\n  \"method\": \"shapley_exact\",\n  \"tokens\": \\[\n    \"the\",")
glassbox_cli_test("explain: generation --json -" ARGS explain ${explain_model} --text "the food was good . =>"
                  --continuation positive --method saliency --json -
                  PASS "^[{]\n  \"schema\": \"glassbox.sequence_attribution\",.*\"prompt_length\": 6,")

# Errors: one "glassbox: error:" line.
glassbox_cli_test("explain error: unknown method" ARGS explain ${explain_model} --text "${review}" --method deeplift FAIL
                  PASS "glassbox: error: --method: unknown method 'deeplift' \\(expected one of: occlusion, .*, all\\)")
glassbox_cli_test("explain error: option of another method" ARGS explain ${explain_model} --text "${review}" --method occlusion
                  --steps 5 FAIL PASS "glassbox: error: --steps does not apply to --method occlusion \\(its options: --window --stride --baseline --groups\\)")
glassbox_cli_test("explain error: bad steps" ARGS explain ${explain_model} --text "${review}" --steps 0 FAIL
                  PASS "glassbox: error: glassbox::integrated_gradients: steps must be >= 1, got 0")
glassbox_cli_test("explain error: steps not a number" ARGS explain ${explain_model} --text "${review}" --steps many FAIL
                  PASS "glassbox: error: .*--steps")
glassbox_cli_test("explain error: bad rule" ARGS explain ${explain_model} --text "${review}" --rule simpson FAIL
                  PASS "glassbox: error: --rule must be one of gauss-legendre, riemann-left, .* got 'simpson'")
glassbox_cli_test("explain error: bad baseline" ARGS explain ${explain_model} --text "${review}" --method occlusion
                  --baseline nothing FAIL PASS "glassbox: error: --baseline must be pad, unk, zero, removal, token:ID, token:WORD or an id, got 'nothing'")
glassbox_cli_test("explain error: layer out of range" ARGS explain ${explain_model} --text "${review}"
                  --method layer-integrated-gradients --layer 99 FAIL PASS "glassbox: error: --layer must be in \\[0, [0-9]+\\] .*got 99")
glassbox_cli_test("explain error: gradient method with a removal baseline" ARGS explain ${explain_model} --text "${review}"
                  --baseline removal FAIL PASS "glassbox: error: glassbox::integrated_gradients: baseline must be pad, token, zero or embedding, got removal")
glassbox_cli_test("explain error: saliency has no baseline" ARGS explain ${explain_model} --text "${review}" --method saliency
                  --baseline zero FAIL PASS "glassbox: error: --baseline does not apply to --method saliency")
glassbox_cli_test("explain error: unknown target word" ARGS explain ${explain_model} --text "${review}" --target splendid FAIL
                  PASS "glassbox: error: --target: 'splendid' is neither a word of the vocabulary nor a token id")
glassbox_cli_test("explain error: target id out of range" ARGS explain ${explain_model} --text "${review}" --target-id 224 FAIL
                  PASS "glassbox: error: --target-id: token id 224 is out of range \\(the vocabulary has 224 tokens\\)")
glassbox_cli_test("explain error: position out of range" ARGS explain ${explain_model} --text "${review}" --position 7 FAIL
                  PASS "glassbox: error: --position must be in \\[-7, 6\\] for an input of 7 tokens, got 7")
glassbox_cli_test("explain error: bad target kind" ARGS explain ${explain_model} --text "${review}" --target-kind odds FAIL
                  PASS "glassbox: error: --target-kind must be one of logit, probability, log-probability, got 'odds'")
glassbox_cli_test("explain error: foil equals target" ARGS explain ${explain_model} --text "${review}" --target positive
                  --contrast positive FAIL PASS "glassbox: error: --contrast: the foil must differ")
glassbox_cli_test("explain error: groups of the wrong length" ARGS explain ${explain_model} --text "${review}" --method lime
                  --groups 0,1 FAIL PASS "glassbox: error: --groups must have one group id per input token \\(7\\), got 2")
glassbox_cli_test("explain error: bad inner method" ARGS explain ${explain_model} --text "${review}" --method noise-tunnel
                  --inner lime FAIL PASS "glassbox: error: --inner must be one of saliency, input-x-gradient, integrated-gradients, got 'lime'")
glassbox_cli_test("explain: --method all passes an option to the methods that read it" ARGS explain ${explain_model}
                  --text "${review}" --method all --samples 4 --json -
                  PASS "\"method\": \"lime\",.*\"n_samples\": 4,.*\"method\": \"kernel_shap\",.*\"n_samples\": 4,")
glassbox_cli_test("explain error: target with a continuation" ARGS explain ${explain_model} --text "${review}"
                  --continuation positive --target positive FAIL PASS "glassbox: error: --target does not apply to generation attribution")
glassbox_cli_test("explain error: unknown continuation word" ARGS explain ${explain_model} --text "${review}"
                  --continuation "splendid" FAIL PASS "glassbox: error: --continuation: 'splendid' is neither a word of the vocabulary nor a token id")
glassbox_cli_test("explain error: too many features for exact shapley" ARGS explain ${explain_model}
                  --tokens "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21" --method shapley-exact FAIL
                  PASS "glassbox: error: glassbox::shapley_exact: .*20")
glassbox_cli_test("explain error: unwritable html" ARGS explain ${explain_model} --text "${review}" --method saliency
                  --html "${glassbox_cli_work}/no/such/dir/x.html" FAIL PASS "glassbox: error: cannot write")

# JSON and HTML against the library.
glassbox_add_test(explain_test explain_test.cpp GPT2)
target_include_directories(explain_test PRIVATE "${PROJECT_SOURCE_DIR}/apps/glassbox")
if(GLASSBOX_EXPLAIN_TEST_MODEL)
  set(explain_test_model "${GLASSBOX_EXPLAIN_TEST_MODEL}")
else()
  set(explain_test_model "${PROJECT_SOURCE_DIR}/models/reviews")
endif()
target_compile_definitions(explain_test PRIVATE GLASSBOX_CLI="$<TARGET_FILE:glassbox_cli>"
                                                GLASSBOX_CLI_WORK="${glassbox_cli_work}"
                                                GLASSBOX_EXPLAIN_MODEL="${explain_test_model}")
add_dependencies(explain_test glassbox_cli)
