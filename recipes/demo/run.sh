#!/usr/bin/env bash
# Offline demo (what `make demo` runs): the shipped English base learns German on 2 CPU cores.
# Usage: recipes/demo/run.sh [options]   (relative paths are taken from the current directory)
#   Stage 0: synthesize a German Common Voice release with espeak-ng voices (faults planted)
#   Stage 1: NeMo manifests (prepare-cv)
#   Stage 2: German character vocabulary
#   Stage 3: fine-tune the English base (recipes/en_base/model) on German
#   Stage 4: train the same model from scratch with the same step budget
#   Stage 5: evaluate both on test, export the transferred model
#   Stage 6: decode test with a language model: a token 5-gram of the training text and the release's
#            validated_sentences.tsv (dev/test sentences removed), weights tuned on dev; beam without LM too
#   Stage 7: RESULTS.md and dev_wer.png (dev WER against steps, both arms; test WER by decoding)
set -euo pipefail
. "$(dirname "$0")/../lib/stages.sh"
option clips 400 "clips to synthesize"
option steps 200 "training steps of each arm"
option val_every "" "validate every N steps (default: 25, or --steps when fewer)"
option out demo_out "output folder"
option jobs "$(nproc)" "worker processes for synthesis and data preparation"
option seed 0 "seed of the corpus and of training"
option base "$repo/recipes/en_base/model/en_tiny_quartznet_char.nemo" "the English base .nemo"
parse_options "$@"
lang=de
val_every=${val_every:-25}  # finetune --val-every is at most --steps: short smoke runs validate once

corpus=$out/cv_synthetic
data=$out/data/$lang
tokenizers=$out/tokenizers
vocab=$(cli train-tokenizer "$tokenizers" --lang "$lang" --kind char --print-dir)
arm_args() {  # $1: arm name, then its own overrides; sets the array args
    local arm=$1; shift
    args=(--config "$repo/recipes/conf/tiny_quartznet_char.yaml" --exp-dir "$out/runs" --name "$arm"
        --steps "$steps" --val-every "$val_every" --seed "$seed" --option-name init.nemo=--base
        lang="$lang" vocab.dir="$vocab" data.train_manifest="$data/train.json" data.dev_manifest="$data/dev.json"
        exp_manager.checkpoint_callback_params.save_top_k=5 "$@")  # 5 best kept: export --average 5 can use them
}
arm_args transfer init.nemo="$base"; transfer_args=("${args[@]}")
arm_args scratch init.scratch=true; scratch_args=("${args[@]}")
transfer_run=$(cli finetune "${transfer_args[@]}" --print-run-dir)
scratch_run=$(cli finetune "${scratch_args[@]}" --print-run-dir)
where() { cli report demo "$out" --print "$1"; }  # the demo's output names live in asr_transfer/layout.py

if run_stage 0; then
    log_stage 0 "synthesize Common Voice ($clips clips, faults planted)" "espeak-ng" "$corpus"
    cli synth-cv "$corpus" --lang "$lang" --clips "$clips" --faults --jobs "$jobs" --seed "$seed"
fi
if run_stage 1; then
    log_stage 1 "manifests" "$corpus" "$data/{train,dev,test}.json"
    cli prepare-cv "$corpus" "$data" --lang "$lang" --jobs "$jobs"
fi
if run_stage 2; then
    log_stage 2 "character vocabulary" "$data/train.json" "$vocab/vocab.txt"
    cli train-tokenizer "$tokenizers" --manifest "$data/train.json" --lang "$lang" --kind char
fi
if run_stage 3; then
    log_stage 3 "fine-tune the English base ($steps steps)" "$base + $data/train.json" "$transfer_run"
    cli finetune "${transfer_args[@]}"
fi
if run_stage 4; then
    log_stage 4 "train from scratch ($steps steps)" "$data/train.json" "$scratch_run"
    cli finetune "${scratch_args[@]}"
fi
if run_stage 5; then
    for arm in transfer scratch; do
        run=$transfer_run; [ "$arm" = scratch ] && run=$scratch_run
        best=$(cli export --print-best "$run")
        eval_dir=$(where "eval-$arm")
        log_stage 5 "evaluate $arm on test" "$best" "$eval_dir/summary.json"
        cli evaluate --model "$best" --manifest "$data/test.json" --out "$eval_dir"
    done
    log_stage 5 "export" "$transfer_run" "$out/model_de_transfer.nemo"
    cli export --run "$transfer_run" --out "$out/model_de_transfer.nemo"
fi
if run_stage 6; then
    model=$out/model_de_transfer.nemo
    log_stage 6 "n-gram LM, tuned on dev" "$data/train.json" "$out/lm/params.json"
    cli train-lm --prepared "$data" --model "$model" --order 5 "$out/lm/char_5gram.arpa"
    cli tune-lm --model "$model" --lm "$out/lm/char_5gram.arpa" --manifest "$data/dev.json" --out "$out/lm/params.json"
    beam_dir=$(where eval-transfer-beam); lm_dir=$(where eval-transfer-lm)
    log_stage 6 "evaluate transfer on test: beam, beam with the LM" "$model" "$beam_dir, $lm_dir"
    cli evaluate --model "$model" --manifest "$data/test.json" --decoding beam --beam-size 8 --out "$beam_dir"
    cli evaluate --model "$model" --manifest "$data/test.json" --lm-params "$out/lm/params.json" --out "$lm_dir"
fi
if run_stage 7; then
    log_stage 7 "report" "$transfer_run $scratch_run" "$out/RESULTS.md, $(where plot)"
    cli report demo "$out" --transfer "$transfer_run" --scratch "$scratch_run" > "$out/RESULTS.md"
    cat "$out/RESULTS.md"
fi
