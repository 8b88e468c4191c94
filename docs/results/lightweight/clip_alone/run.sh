#!/bin/bash
# Does step 1's CLIP term learn when it is the only term, and does it with the MSE beside it? (2026-11-30)
# Teacher: the shipped English FastConformer BPE base on its own synthetic English speech (recipes/en_base
# data: recipes/en_base/run.sh --stop_stage 1 makes exp/en_base/data); a 4-layer random student, seed 0,
# batch 16, 300 step-1 steps, each loss; step 2 is 2 CTC steps (only step 1 and its check are read).
# Run from the repository root; dev_small.json: asr-transfer manifest subset exp/en_base/data/dev.json --hours 0.1 --seed 0
set -euo pipefail
asr-transfer manifest subset exp/en_base/data/dev.json --hours 0.1 --seed 0 --out exp/clip_alone/dev_small.json
for loss in clip clip+mse; do
  taskset -c 1 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asr-transfer shrink \
    --teacher recipes/en_base/model/en_tiny_fastconformer_bpe128.nemo --students 4 \
    --audio exp/en_base/data/train.json --train exp/en_base/data/train.json \
    --dev exp/clip_alone/dev_small.json --test exp/clip_alone/dev_small.json \
    --config recipes/conf/tiny_fastconformer_bpe.yaml --lang en \
    --rl-steps 300 --set step1.validations=6 --ctc-steps 2 --val-every 1 --baselines none --loss "$loss" \
    --seeds 0 --batch-size 16 "exp/clip_alone/out_$loss"
done
