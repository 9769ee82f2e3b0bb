# glassbox sae train / sae inspect (issue 15): a short training run on generated reviews, the
# dashboards as JSON and HTML, and the errors. The data come from `generate-data` (a fixture).
set(sae_work "${glassbox_cli_work}/sae")
file(MAKE_DIRECTORY "${sae_work}")

glassbox_cli_test("sae: generate reviews" ARGS generate-data --n 150 --seed 2 --out "${sae_work}/reviews.jsonl")
set_tests_properties("cli: sae: generate reviews" PROPERTIES FIXTURES_SETUP sae_reviews)

glassbox_cli_test("sae train --help" ARGS sae train --help
                  PASS "--model.*--layer.*--data.*--activations.*--features.*--l1.*--lr.*--warmup.*--batch-size.*--steps.*--resample-every.*--seed.*--threads.*--out.*--json")
glassbox_cli_test("sae train" ARGS sae train --layer 2 --data "${sae_work}/reviews.jsonl" --features 128 --l1 1
                  --steps 60 --batch-size 256 --resample-every 30 --seed 1 --threads 1 --out "${sae_work}/sae.safetensors"
                  PASS "trained 128 features on [0-9]+ rows x 64 \\(layer 2\\): 60 steps, 15360 tokens in [0-9.]+ s \\([0-9]+ tokens/s\\)\noptions: features=128 l1=1 .*seed=1 resample_every=30 resampled=[0-9]+\nMSE [0-9.e-]+ \\| explained variance [0-9.-]+ \\| L0 [0-9.]+ \\| dead [0-9.]+% \\| dense [0-9.]+%\nloss recovered [0-9.-]+ \\(clean [0-9.]+, with the SAE [0-9.]+, zero-ablated [0-9.]+; [0-9]+ scored rows\\)\nwrote .*sae.safetensors")
set_tests_properties("cli: sae train" PROPERTIES FIXTURES_REQUIRED sae_reviews FIXTURES_SETUP sae_file)

glassbox_cli_test("sae inspect --json" ARGS sae inspect --sae "${sae_work}/sae.safetensors" --data "${sae_work}/reviews.jsonl"
                  --max-inputs 60 --show 2 --top 3 --threads 1 --json -
                  PASS "^{\n +\"schema\": \"glassbox.sae\",\n +\"version\": 1,\n +\"sae\": {.*\"layer\": 2,.*\"features\": 128,\n +\"width\": 64\n +},\n +\"metrics\": {.*\"explained_variance\": .*\"l0\": .*\"dead_fraction\": .*\"dense_fraction\": .*\"loss_recovered\": {.*\"fraction_recovered\": .*\"properties\": {.*\"matched_fraction\": .*\"best_feature\": \\[.*\"property\": \"is_negated\",.*\"features\": \\[.*\"best_property\": {.*\"logits\": {.*\"top\": \\[.*\"top_contexts\": \\[.*\"context\": ")
set_tests_properties("cli: sae inspect --json" PROPERTIES FIXTURES_REQUIRED "sae_reviews;sae_file")
glassbox_cli_test("sae inspect --feature --html" ARGS sae inspect --sae "${sae_work}/sae.safetensors" --feature 5 --top 2
                  --html "${sae_work}/sae.html"
                  PASS "^SAE .*: 128 features over width 64 at layer 2 \\(l1 1, .*\\)\n\nfeature 5\n  promotes:   [^\n]+\n  suppresses: [^\n]+\n$")
set_tests_properties("cli: sae inspect --feature --html" PROPERTIES FIXTURES_REQUIRED sae_file)

glassbox_cli_test("sae inspect: missing file" ARGS sae inspect --sae "${sae_work}/missing.safetensors" FAIL
                  PASS "glassbox: error: .*missing.safetensors.*does not exist")
glassbox_cli_test("sae inspect: --feature out of range" ARGS sae inspect --sae "${sae_work}/sae.safetensors" --feature 128 FAIL
                  PASS "glassbox: error: --feature must be < 128 \\(the SAE's features\\), got 128")
set_tests_properties("cli: sae inspect: --feature out of range" PROPERTIES FIXTURES_REQUIRED sae_file)
glassbox_cli_test("sae train: --layer out of range" ARGS sae train --layer 9 --data "${sae_work}/reviews.jsonl" --out "${sae_work}/x.safetensors" FAIL
                  PASS "glassbox: error: --layer must be <= 4 \\(the model's hidden-state indices 0..L\\), got 9")
set_tests_properties("cli: sae train: --layer out of range" PROPERTIES FIXTURES_REQUIRED sae_reviews)
