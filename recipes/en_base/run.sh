#!/usr/bin/env bash
# Train the small English base model that the demo and the study start from: a tiny QuartzNet-style
# character CTC model (recipes/conf/arch/tiny_quartznet_char.yaml, about 0.4M parameters) trained from
# scratch on synthetic English Common Voice spoken by espeak-ng voices of six English accents
# (en-gb-scotland and en-029 are held out for the accent-adaptation study).
# Usage: recipes/en_base/run.sh [options]   (relative paths are taken from the current directory)
#   Stage 0: synthesize English Common Voice
#   Stage 1: manifests
#   Stage 2: English character vocabulary
#   Stage 3: train from scratch
#   Stage 4: evaluate on dev, copy the model and its provenance to --model_dir
set -euo pipefail
. "$(dirname "$0")/../lib/stages.sh"
option clips 3000 "clips to synthesize"
option steps 3000 "training steps"
option out exp/en_base "output folder"
option seed 7 "seed of the corpus and of training"
option jobs "$(nproc)" "worker processes for synthesis and data preparation"
option model_dir "$repo/recipes/en_base/model" "where the shipped model and its provenance go"
parse_options "$@"

accents="en-us en-gb en-gb-x-rp en-us-nyc en-gb-x-gbclan en-gb-x-gbcwmd"
corpus=$out/cv_en
data=$out/data
tokenizers=$out/tokenizers
vocab=$(cli train-tokenizer "$tokenizers" --lang en --kind char --print-dir)
model=$model_dir/en_tiny_quartznet_char.nemo
finetune_args=(--config "$repo/recipes/conf/tiny_quartznet_char.yaml" init.scratch=true vocab.dir="$vocab"
    data.train_manifest="$data/train.json" data.dev_manifest="$data/dev.json" trainer.max_steps="$steps"
    trainer.val_check_interval=250 exp_manager.exp_dir="$out/train" seed="$seed" trainer.enable_progress_bar=false)
run_dir=$(cli finetune "${finetune_args[@]}" --print-run-dir)

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
    log_stage 2 "character vocabulary" "$data/train.json" "$vocab/vocab.txt"
    cli train-tokenizer "$tokenizers" --manifest "$data/train.json" --lang en --kind char
fi
if run_stage 3; then
    log_stage 3 "train from scratch ($steps steps)" "$data/train.json" "$run_dir"
    cli finetune "${finetune_args[@]}"
fi
if run_stage 4; then
    log_stage 4 "evaluate and publish" "$run_dir" "$model"
    cli export --run "$run_dir" --out "$model"
    cli evaluate --model "$model" --manifest "$data/dev.json" --out "$out/eval_dev"
    cli provenance "$model" --config "$run_dir/finetune_config.yaml" --eval "$out/eval_dev/summary.json" \
        --note "synthetic English Common Voice, $clips clips, seed $seed, accents: $accents; command: recipes/en_base/run.sh --clips $clips --steps $steps"
fi
