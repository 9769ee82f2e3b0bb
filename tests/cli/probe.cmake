# glassbox activations, probe and tcav (issue 13): an activation file from generated reviews, probes
# from the file and from the data in one go, the JSON, HTML and probe outputs, TCAV, and the errors
# of each option. The data come from `generate-data` (a fixture), so the tests run in order.
set(probe_work "${glassbox_cli_work}/probing")
file(MAKE_DIRECTORY "${probe_work}")

function(probe_fixture name setup)
  set_tests_properties("cli: ${name}" PROPERTIES FIXTURES_SETUP "${setup}" ${ARGN})
endfunction()
function(probe_requires name)
  set_tests_properties("cli: ${name}" PROPERTIES FIXTURES_REQUIRED "${ARGN}")
endfunction()

glassbox_cli_test("probing: generate reviews" ARGS generate-data --n 300 --seed 2 --out "${probe_work}/reviews.jsonl")
probe_fixture("probing: generate reviews" probe_reviews)
glassbox_cli_test("probing: generate random reviews" ARGS generate-data --n 60 --seed 4 --out "${probe_work}/random.jsonl")
probe_fixture("probing: generate random reviews" probe_random)
glassbox_cli_test("probing: generate scored reviews" ARGS generate-data --n 30 --seed 5 --out "${probe_work}/scored.jsonl")
probe_fixture("probing: generate scored reviews" probe_scored)
# A concept written by hand: reviews whose only sentiment word is a plain positive one.
file(WRITE "${probe_work}/good_food.jsonl"
     "{\"text\": \"the food was good . =>\"}\n{\"text\": \"the soup was good . =>\"}\n"
     "{\"text\": \"the service was excellent . =>\"}\n{\"text\": \"the wine was good . =>\"}\n"
     "{\"text\": \"the staff were excellent . =>\"}\n{\"text\": \"the food was excellent . =>\"}\n"
     "{\"text\": \"the soup was excellent . =>\"}\n{\"text\": \"the service was good . =>\"}\n"
     "{\"text\": \"the wine was excellent . =>\"}\n{\"text\": \"the staff were good . =>\"}\n")
file(WRITE "${probe_work}/bad_json.jsonl" "{\"token_ids\": [5, 2], \"properties\": \n")
file(WRITE "${probe_work}/short_property.jsonl" "{\"token_ids\": [5, 2], \"properties\": {\"is_negated\": [0]}}\n")

glassbox_cli_test("activations --help" ARGS activations --help
                  PASS "--data.*--property.*--where.*--layers.*--pool.*token, last, mean.*--memory-limit.*--split.*--out")
glassbox_cli_test("probe --help" ARGS probe --help
                  PASS "--activations.*--data.*--property.*--C .*inverse L2 strength.*--layers.*--probe.*--max-iterations.*--control.*--mdl.*--seed.*--pool.*--save-probe.*--json.*--html")
glassbox_cli_test("tcav --help" ARGS tcav --help
                  PASS "--concept.*--random.*--data.*--target.*--layer.*--random-runs.*--significance.*--json.*--html")

# The activation file of is_negated on the sentiment words, three layers, with a split; then probes of it.
glassbox_cli_test("activations" ARGS activations --data "${probe_work}/reviews.jsonl" --property is_negated --where is_sentiment
                  --layers 0,2,4 --split --seed 1 --threads 1 --out "${probe_work}/negated.safetensors"
                  PASS "wrote [0-9]+ rows \\(is_negated of 300 inputs, token pooling\\) x layers 0,2,4 x 64 floats .*negated.safetensors\nlabels: 2 classes: no, yes \\| split: grouped 80/10/10, seed 1")
probe_fixture("activations" probe_activations FIXTURES_REQUIRED probe_reviews)
# Negation is not in the embeddings (layer 0: about the majority rate) and is resolved by layer 2.
glassbox_cli_test("probe --activations" ARGS probe --activations "${probe_work}/negated.safetensors" --mdl
                  --json "${probe_work}/negated.json" --html "${probe_work}/negated.html"
                  --save-probe "${probe_work}/negated_probe.safetensors"
                  PASS "property is_negated \\| 2 classes: no, yes \\| logistic probe\nrows: train [0-9]+, dev [0-9]+, test [0-9]+ \\(the file's split\\) \\| majority class 0\\.[0-9]+\n.*control acc  selectivity  codelength bits  compression.*\n +0 +0\\.[0-9]+ +0\\.[5-8][0-9]+ .*\n +2 +(0\\.9[0-9]+|1\\.000) +(0\\.9[0-9]+|1\\.000) .*\n +4 ")
probe_requires("probe --activations" probe_activations)
glassbox_cli_test("probe --json to stdout" ARGS probe --activations "${probe_work}/negated.safetensors" --layers 2 --mdl
                  --json -
                  PASS "^{\n +\"schema\": \"glassbox.probe\",\n +\"version\": 1,.*\"property\": \"is_negated\",.*\"layers\": \\[\n +{\n +\"layer\": 2,\n +\"train_accuracy\": [0-9.e-]+,\n +\"dev_accuracy\": [0-9.e-]+,\n +\"test_accuracy\": [0-9.e-]+,\n +\"macro_f1\": [0-9.e-]+,\n +\"control_accuracy\": [0-9.e-]+,\n +\"selectivity\": [0-9.e-]+,\n +\"codelength_bits\": [0-9.e-]+,\n +\"compression\": [0-9.e-]+,.*\"iterations\": [0-9]+,\n +\"converged\": true\n +}\n +\\]")
probe_requires("probe --json to stdout" probe_activations)
glassbox_cli_test("probe --control=false" ARGS probe --activations "${probe_work}/negated.safetensors" --layers 4
                  --control=false --C 0.5 --max-iterations 500
                  PASS "options: layers=4 probe=linear C=0.5 tol=0.0001 max_iterations=500 control=false mdl=false seed=0\n.*\n +4 +[0-9.]+ +[0-9.]+ +[0-9.]+ +- +- ")
probe_requires("probe --control=false" probe_activations)
# In one go from the data: the label at the marker (last pooling), and a real value (ridge).
glassbox_cli_test("probe --data --pool last" ARGS probe --data "${probe_work}/reviews.jsonl" --property true_label --pool last
                  --layers 3,4 --threads 1
                  PASS "property true_label \\| 2 classes: negative, positive \\| logistic probe\nrows: train 240, dev 30, test 30 \\(grouped seeded split\\).*\n +3 .*\n +4 +(0\\.9[0-9]+|1\\.000) +(0\\.9[0-9]+|1\\.000) ")
probe_requires("probe --data --pool last" probe_reviews)
glassbox_cli_test("probe --data --real" ARGS probe --data "${probe_work}/reviews.jsonl" --property strength --where is_sentiment
                  --real --layers 0
                  PASS "property strength \\| real values \\| ridge probe\n.*alpha=1.*\nlayer  train R\\^2  test R\\^2  control R\\^2  selectivity.*\n +0 +0\\.[0-9]+ ")
probe_requires("probe --data --real" probe_reviews)
# Above --memory-limit (1 MiB) the rows stream to a temporary activation file, probed layer by layer.
glassbox_cli_test("probe --data above --memory-limit" ARGS probe --data "${probe_work}/reviews.jsonl" --property is_sentiment
                  --layers 0,4 --memory-limit 1 --control=false
                  PASS "property is_sentiment \\| 2 classes: no, yes \\| logistic probe\n.*\n.*\n.*\n +0 +(0\\.9[0-9]+|1\\.000) +(0\\.9[0-9]+|1\\.000) .*\n +4 ")
probe_requires("probe --data above --memory-limit" probe_reviews)
glassbox_cli_test("probe --probe mlp" ARGS probe --activations "${probe_work}/negated.safetensors" --layers 2 --probe mlp
                  --epochs 3 --hidden 16 PASS "mlp probe")
probe_requires("probe --probe mlp" probe_activations)

glassbox_cli_test("tcav" ARGS tcav --concept "good=${probe_work}/good_food.jsonl" --random "${probe_work}/random.jsonl"
                  --data "${probe_work}/scored.jsonl" --target positive --layer 3,4 --random-runs 6 --threads 1
                  --json "${probe_work}/tcav.json" --html "${probe_work}/tcav.html"
                  PASS "tcav \\| target log-probability of token 3 .*'positive'\\) \\| 30 inputs \\| 1 concepts x 2 layers \\(Bonferroni factor 2\\)\n.*random_runs=6.*\nconcept +layer +TCAV score.*\ngood +3 .*\ngood +4 ")
probe_requires("tcav" "probe_random;probe_scored")

glassbox_cli_test("error: probe without input" ARGS probe FAIL
                  PASS "glassbox: error: give either --activations FILE or --data FILE --property NAME")
glassbox_cli_test("error: probe --data without --property" ARGS probe --data "${probe_work}/reviews.jsonl" FAIL
                  PASS "glassbox: error: --data needs --property")
glassbox_cli_test("error: probe unknown property" ARGS probe --data "${probe_work}/reviews.jsonl" --property nope FAIL
                  PASS "glassbox: error: .*reviews.jsonl line 1: no per-token property \"nope\" \\(\"properties\" holds: pos, is_sentiment, ")
probe_requires("error: probe unknown property" probe_reviews)
glassbox_cli_test("error: probe per-token property pooled" ARGS probe --data "${probe_work}/reviews.jsonl" --property is_negated
                  --pool last FAIL PASS "glassbox: error: .*line 1: no field \"is_negated\" \\(a label of the whole input for --pool last")
probe_requires("error: probe per-token property pooled" probe_reviews)
glassbox_cli_test("error: probe --where with --pool last" ARGS probe --data "${probe_work}/reviews.jsonl" --property label
                  --pool last --where is_sentiment FAIL PASS "glassbox: error: --where applies with --pool token, got --pool last")
probe_requires("error: probe --where with --pool last" probe_reviews)
glassbox_cli_test("error: probe --pool with --activations" ARGS probe --activations "${probe_work}/negated.safetensors"
                  --pool last FAIL PASS "glassbox: error: --pool applies with --data")
glassbox_cli_test("error: probe bad --layers" ARGS probe --activations "${probe_work}/negated.safetensors" --layers 0,x FAIL
                  PASS "glassbox: error: --layers must be all or hidden-state indices such as 0,2,4, got '0,x'")
glassbox_cli_test("error: probe layer not in the file" ARGS probe --activations "${probe_work}/negated.safetensors" --layers 1
                  FAIL PASS "glassbox: error: .*layer.*1")
probe_requires("error: probe layer not in the file" probe_activations)
glassbox_cli_test("error: probe bad C" ARGS probe --activations "${probe_work}/negated.safetensors" --C 0 FAIL
                  PASS "glassbox: error: glassbox::probe_layers: C must be > 0 and finite, got 0")
probe_requires("error: probe bad C" probe_activations)
glassbox_cli_test("error: probe --mdl on real values" ARGS probe --data "${probe_work}/reviews.jsonl" --property strength
                  --real --mdl FAIL PASS "glassbox: error: glassbox::probe_layers: mdl needs class labels")
probe_requires("error: probe --mdl on real values" probe_reviews)
glassbox_cli_test("error: probe --save-probe with mlp" ARGS probe --activations "${probe_work}/negated.safetensors" --probe mlp
                  --save-probe "${probe_work}/x.safetensors" FAIL PASS "glassbox: error: --save-probe saves linear probes, got --probe mlp")
glassbox_cli_test("error: probe missing activation file" ARGS probe --activations "${probe_work}/no_such.safetensors" FAIL
                  PASS "glassbox: error: .*no_such.safetensors")
glassbox_cli_test("error: activations bad JSON" ARGS activations --data "${probe_work}/bad_json.jsonl" --property is_negated
                  --out "${probe_work}/x.safetensors" FAIL PASS "glassbox: error: .*bad_json.jsonl line 1: is not valid JSON")
glassbox_cli_test("error: activations short property" ARGS activations --data "${probe_work}/short_property.jsonl"
                  --property is_negated --out "${probe_work}/x.safetensors" FAIL
                  PASS "glassbox: error: .*short_property.jsonl line 1: \"is_negated\" must be an array of one value per token \\(2\\), got 1 values")
glassbox_cli_test("error: activations bad --pool" ARGS activations --data "${probe_work}/bad_json.jsonl" --property x
                  --pool first --out "${probe_work}/x.safetensors" FAIL
                  PASS "glassbox: error: --pool must be one of token, last, mean, got 'first'")
glassbox_cli_test("error: activations unwritable --out" ARGS activations --data "${probe_work}/bad_json.jsonl" --property x
                  --out "${probe_work}/no/such/dir/x.safetensors" FAIL PASS "glassbox: error: cannot write .*its directory does not exist")
glassbox_cli_test("error: tcav --layer out of range" ARGS tcav --concept "${probe_work}/good_food.jsonl" --random
                  "${probe_work}/good_food.jsonl" --data "${probe_work}/good_food.jsonl" --target positive --layer 9 FAIL
                  PASS "glassbox: error: --layer must be in \\[0, 4\\]")
glassbox_cli_test("error: tcav unknown target" ARGS tcav --concept "${probe_work}/good_food.jsonl" --random
                  "${probe_work}/good_food.jsonl" --data "${probe_work}/good_food.jsonl" --target scrumptious --layer 3 FAIL
                  PASS "glassbox: error: --target: 'scrumptious' is neither")
glassbox_cli_test("error: tcav too few random examples" ARGS tcav --concept "${probe_work}/good_food.jsonl" --random
                  "${probe_work}/good_food.jsonl" --data "${probe_work}/good_food.jsonl" --target positive --layer 3 FAIL
                  PASS "glassbox: error: glassbox::tcav: ")
