# glassbox lens, tuned-lens and steer (issue 15): the logit lens of one review, a tuned lens trained on
# generated reviews and read through, a reading vector from antonym pairs, steering one input and a
# data file, and the errors of each. The data come from `generate-data` (a fixture).
set(repr_work "${glassbox_cli_work}/representations")
file(MAKE_DIRECTORY "${repr_work}")
file(WRITE "${repr_work}/pairs.jsonl"
     "{\"positive\": \"the food was good . =>\", \"negative\": \"the food was bad . =>\"}\n"
     "{\"positive\": \"the soup was excellent . =>\", \"negative\": \"the soup was terrible . =>\"}\n"
     "{\"positive\": \"the staff were good . =>\", \"negative\": \"the staff were bad . =>\"}\n"
     "{\"positive\": \"i love the wine . =>\", \"negative\": \"i hate the wine . =>\"}\n")
file(WRITE "${repr_work}/bad_pairs.jsonl" "{\"positive\": \"the food was good . =>\"}\n")

glassbox_cli_test("representations: generate reviews" ARGS generate-data --n 60 --seed 6 --out "${repr_work}/reviews.jsonl")
set_tests_properties("cli: representations: generate reviews" PROPERTIES FIXTURES_SETUP repr_reviews)

# The bundled model resolves the negation by the last blocks: the lens of layer 4 is the model itself (KL 0).
glassbox_cli_test("lens" ARGS lens --text "the food was not good . =>" --target positive --top 2
                  --html "${repr_work}/lens.html"
                  PASS "logit lens at the last position \\(=>\\):\n +layer +0 +KL +[0-9.]+ .*\n +layer +1 .*\n +layer +2 .*\n +layer +3 .*\n +layer +4 +KL +0\\.0000 +negative 1\\.000, .*target p = 0\\.0000, rank 2")
glassbox_cli_test("lens --json" ARGS lens --tokens 173,113,180,29,5,2 --target 3 --json -
                  PASS "\"method\": \"logit_lens\",.*\"layers\": \\[\n +{\n +\"layer\": 0,\n +\"positions\": \\[\n +{\n +\"top\": \\[\n +{\n +\"id\": [0-9]+,\n +\"token\": \"[^\"]+\",\n +\"p\": [0-9.e-]+\n.*\"kl_to_final\": [0-9.e-]+,\n +\"entropy\": [0-9.e-]+,\n +\"target_p\": [0-9.e-]+,\n +\"target_rank\": [0-9]+")
glassbox_cli_test("tuned-lens" ARGS tuned-lens --data "${repr_work}/reviews.jsonl" --steps 10 --batch 16 --threads 1
                  --out "${repr_work}/tuned.safetensors"
                  PASS "tuned lens of 60 inputs, 10 steps, written to .*tuned.safetensors\nlayer +KL logit +KL tuned +ppl logit +ppl tuned\n +0 .*\n +1 .*\n +2 .*\n +3 .*\n +4 +0\\.0000 +0\\.0000 .*\n\\(KL: .*perplexity of each line's label after its last token\\)")
set_tests_properties("cli: tuned-lens" PROPERTIES FIXTURES_SETUP repr_tuned FIXTURES_REQUIRED repr_reviews)
glassbox_cli_test("lens --tuned" ARGS lens --text "the food was not good . =>" --tuned "${repr_work}/tuned.safetensors"
                  PASS "tuned lens at the last position \\(=>\\):\n +layer +0 .*\n.*\n.*\n.*\n +layer +4 +KL +0\\.0000 +negative 1\\.000")
set_tests_properties("cli: lens --tuned" PROPERTIES FIXTURES_REQUIRED repr_tuned)

glassbox_cli_test("steer --pairs" ARGS steer --pairs "${repr_work}/pairs.jsonl" --layer 3 --alpha 0 --text "the food was not good . =>"
                  --save-vector "${repr_work}/sentiment.safetensors"
                  PASS "reading vector at layer 3: explains [0-9.]+% of the pair differences, orders 100\\.0% of the pairs\nnext token after position 6 \\(=>\\), without and with the edit \\(alpha = 0\\):\n +1\\. negative +0\\.9999 +negative +0\\.9999\n")
set_tests_properties("cli: steer --pairs" PROPERTIES FIXTURES_SETUP repr_vector)
glassbox_cli_test("steer --vector --data" ARGS steer --vector "${repr_work}/sentiment.safetensors" --layer 3
                  --data "${repr_work}/reviews.jsonl" --alphas -4,0,4 --threads 1 --json "${repr_work}/steer.json"
                  PASS "over 60 inputs \\(positive vs negative\\):\n +alpha +mean target +flip rate +wrong way\n +-4\\.000 .*\n +0\\.000 +[-0-9.]+ +0\\.0% +0\\.0%\n +4\\.000 ")
set_tests_properties("cli: steer --vector --data" PROPERTIES FIXTURES_REQUIRED "repr_vector;repr_reviews")

glassbox_cli_test("error: lens --tuned missing file" ARGS lens --text "the food was good . =>" --tuned "${repr_work}/none.safetensors" FAIL
                  PASS "none.safetensors")
glassbox_cli_test("error: steer without a vector" ARGS steer --layer 2 --text "the food was good . =>" FAIL
                  PASS "give exactly one of --vector and --pairs")
glassbox_cli_test("error: steer --layer out of range" ARGS steer --pairs "${repr_work}/pairs.jsonl" --layer 9 --text "the food was good . =>" FAIL
                  PASS "--layer must be a hidden-state index 0..4 \\(0 = embeddings, 4 = last block\\), got 9")
glassbox_cli_test("error: steer malformed pairs" ARGS steer --pairs "${repr_work}/bad_pairs.jsonl" --layer 2 --text "the food was good . =>" FAIL
                  PASS "bad_pairs.jsonl:1: a pair needs \"positive\" and \"negative\"")
glassbox_cli_test("error: steer bad positions" ARGS steer --pairs "${repr_work}/pairs.jsonl" --layer 2 --positions 3,x --text "the food was good . =>" FAIL
                  PASS "--positions must be all, last or positions < 6 such as 0,3; got 'x'")
