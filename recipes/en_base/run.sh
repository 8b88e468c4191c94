#!/usr/bin/env bash
# Train the small English base model that the demo and the study start from: a tiny QuartzNet-style
# character CTC model (recipes/conf/tiny_quartznet_char.yaml, about 0.4M parameters) trained from
# scratch on synthetic English Common Voice spoken by espeak-ng voices of six English accents
# (en-gb-scotland and en-029 are held out for the accent-adaptation study).
# Usage: recipes/en_base/run.sh [--stage N] [--stop_stage N] [--clips N] [--steps N] [--out DIR]
#   Stage 0: synthesize English Common Voice
#   Stage 1: manifests
#   Stage 2: English character vocabulary
#   Stage 3: train from scratch
#   Stage 4: evaluate on dev, copy the model and its provenance to recipes/en_base/model/
set -euo pipefail
cd "$(dirname "$0")/../.."
stage=0; stop_stage=100; clips=3000; steps=3000; out=exp/en_base; seed=7; jobs=$(nproc)
. recipes/lib/stages.sh "$@"
PY=${PYTHON:-.venv/bin/python}
cli() { "$PY" -m asr_transfer.cli "$@"; }

accents="en-us en-gb en-gb-x-rp en-us-nyc en-gb-x-gbclan en-gb-x-gbcwmd"
corpus=$out/cv_en
data=$out/data
tokenizers=$out/tokenizers
model_dir=recipes/en_base/model
conf=recipes/conf/tiny_quartznet_char.yaml

if run_stage 0; then
    log_stage 0 "synthesize English Common Voice ($clips clips; accents: $accents)" "espeak-ng" "$corpus"
    accent_args=(); for accent in $accents; do accent_args+=(--accent "$accent"); done
    cli synth-cv "$corpus" --lang en --clips "$clips" --seed "$seed" "${accent_args[@]}" --jobs "$jobs"
fi
if run_stage 1; then
    log_stage 1 "manifests" "$corpus" "$data/{train,dev,test}.json"
    cli prepare-cv "$corpus" "$data" --lang en --jobs "$jobs"
fi
if run_stage 2; then
    log_stage 2 "character vocabulary" "$data/train.json" "$tokenizers/en/char/vocab.txt"
    cli train-tokenizer "$tokenizers" --manifest "$data/train.json" --lang en --kind char
fi
if run_stage 3; then
    log_stage 3 "train from scratch ($steps steps)" "$data/train.json" "$out/train/run/v1"
    cli finetune --config "$conf" init.scratch=true vocab.dir="$tokenizers/en/char" \
        data.train_manifest="$data/train.json" data.dev_manifest="$data/dev.json" \
        trainer.max_steps="$steps" trainer.val_check_interval=250 exp_manager.exp_dir="$out/train" \
        seed="$seed" trainer.enable_progress_bar=false
fi
if run_stage 4; then
    log_stage 4 "evaluate and publish" "$out/train/run/v1" "$model_dir/en_tiny_quartznet_char.nemo"
    cli export --run "$out/train/run/v1" --out "$model_dir/en_tiny_quartznet_char.nemo"
    cli evaluate --model "$model_dir/en_tiny_quartznet_char.nemo" --manifest "$data/dev.json" \
        --out "$out/eval_dev"
    "$PY" -m asr_transfer.training.provenance "$model_dir/en_tiny_quartznet_char.nemo" \
        --config "$out/train/run/v1/finetune_config.yaml" --eval "$out/eval_dev/summary.json" \
        --note "synthetic English Common Voice, $clips clips, seed $seed, accents: $accents; command: recipes/en_base/run.sh --clips $clips --steps $steps"
fi
