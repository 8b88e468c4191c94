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
# Validate at least once even in short smoke runs: the report plots the dev curve.
val_every=${val_every:-$(( steps < 25 ? steps : 25 ))}
export ASR_TRANSFER_BASE_OPTION=--base

corpus=$out/cv_synthetic
data=$out/data/$lang
tokenizers=$out/tokenizers
vocab=$(cli train-tokenizer "$tokenizers" --lang "$lang" --kind char --print-dir)
arm_args() {  # $1: arm name, then its own overrides; sets the array args
    local arm=$1; shift
    args=(--config "$repo/recipes/conf/tiny_quartznet_char.yaml" lang="$lang" vocab.dir="$vocab"
        data.train_manifest="$data/train.json" data.dev_manifest="$data/dev.json" trainer.max_steps="$steps"
        trainer.val_check_interval="$val_every" exp_manager.exp_dir="$out/runs" exp_manager.name="$arm"
        seed="$seed" trainer.enable_progress_bar=false "$@")
}
arm_args transfer init.nemo="$base"; transfer_args=("${args[@]}")
arm_args scratch init.scratch=true; scratch_args=("${args[@]}")
transfer_run=$(cli finetune "${transfer_args[@]}" --print-run-dir)
scratch_run=$(cli finetune "${scratch_args[@]}" --print-run-dir)

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
        log_stage 5 "evaluate $arm on test" "$best" "$out/eval_$arm/summary.json"
        cli evaluate --model "$best" --manifest "$data/test.json" --out "$out/eval_$arm"
    done
    log_stage 5 "export" "$transfer_run" "$out/model_de_transfer.nemo"
    cli export --run "$transfer_run" --out "$out/model_de_transfer.nemo"
fi
if run_stage 6; then
    model=$out/model_de_transfer.nemo
    log_stage 6 "n-gram LM, tuned on dev" "$data/train.json" "$out/lm/params.json"
    cli train-lm --prepared "$data" --model "$model" --order 5 "$out/lm/char_5gram.arpa"
    cli tune-lm --model "$model" --lm "$out/lm/char_5gram.arpa" --manifest "$data/dev.json" --out "$out/lm/params.json"
    log_stage 6 "evaluate transfer on test: beam, beam with the LM" "$model" "$out/eval_transfer_{beam,lm}/summary.json"
    cli evaluate --model "$model" --manifest "$data/test.json" --decoding beam --beam-size 8 --out "$out/eval_transfer_beam"
    cli evaluate --model "$model" --manifest "$data/test.json" --lm-params "$out/lm/params.json" --out "$out/eval_transfer_lm"
fi
if run_stage 7; then
    log_stage 7 "report" "$transfer_run $scratch_run" "$out/RESULTS.md, $out/dev_wer.png"
    cli report demo "$out" --transfer "$transfer_run" --scratch "$scratch_run" > "$out/RESULTS.md"
    cat "$out/RESULTS.md"
fi
