# glassbox train --save-checkpoints K: K checkpoints evenly spaced in steps, each with the learning
# rate of the step that produced it, and the list TracIn reads (docs/influence.md#tracin).
set(tiny_training --layers 1 --heads 1 --width 8 --steps 6 --batch 2 --eval-size 0 --log-every 0)
glassbox_cli_test("train --save-checkpoints" ARGS train --out "${glassbox_cli_work}/tracin_train" ${tiny_training}
                  --save-checkpoints 3
                  PASS "checkpoint after step 2 \\(learning rate [0-9.e-]+\\): [^\n]*checkpoints/step-000002\\.safetensors\ncheckpoint after step 4 \\(learning rate [0-9.e-]+\\): [^\n]*step-000004\\.safetensors\ncheckpoint after step 6 \\(learning rate [0-9.e-]+\\): [^\n]*step-000006\\.safetensors\nwrote ")
glassbox_cli_test("error: train --save-checkpoints beyond the steps" ARGS train --out "${glassbox_cli_work}/tracin_bad"
                  ${tiny_training} --save-checkpoints 7 FAIL PASS "--save-checkpoints must be in \\[1, 6\\] \\(the steps\\), got 7")
