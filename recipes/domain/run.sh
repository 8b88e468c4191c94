#!/usr/bin/env bash
# Adapt a model to a new domain with a new manifest, and measure what it forgot.
# Usage: recipes/domain/run.sh --model BASE.nemo --train NEW.json --dev NEW_DEV.json
#        [--original_dev OLD_DEV.json] [--mix_original F --original_train OLD.json] [--out DIR]
#        [--stage N] [--stop_stage N] [--overrides "trainer.max_steps=500 ..."]
#   Stage 0: check inputs
#   Stage 1: WER of the base on the new domain (and the original one): before
#   Stage 2: training manifest: the new domain, plus a fraction F of the original data replayed
#   Stage 3: fine-tune (same vocabulary, recipes/conf/domain.yaml)
#   Stage 4: WER after, on both domains; RESULTS.md with before/after and what was forgotten
#   Stage 5: export
set -euo pipefail
cd "$(dirname "$0")/../.."
stage=0; stop_stage=100; model=""; train=""; dev=""; original_dev=""; original_train=""; mix_original=0
out=exp/domain; overrides=""
. recipes/lib/stages.sh "$@"
PY=${PYTHON:-.venv/bin/python}
cli() { "$PY" -m asr_transfer.cli "$@"; }
run_dir=$out/finetune/run/v1

if run_stage 0; then
    log_stage 0 "check inputs" "$model $train $dev" "-"
    for f in "$model" "$train" "$dev"; do [ -f "$f" ] || { echo "error: --model, --train and --dev must be files ($f)" >&2; exit 2; }; done
    if [ "$mix_original" != 0 ] && [ ! -f "$original_train" ]; then
        echo "error: --mix_original needs --original_train OLD.json" >&2; exit 2
    fi
    cli manifest validate "$train" "$dev" --no-audio
fi
evaluate_all() {  # $1: model, $2: before|after
    cli evaluate --model "$1" --manifest "$dev" --out "$out/eval_$2_new"
    if [ -n "$original_dev" ]; then cli evaluate --model "$1" --manifest "$original_dev" --out "$out/eval_$2_original"; fi
}
if run_stage 1; then
    log_stage 1 "evaluate the base" "$model" "$out/eval_before_*"
    evaluate_all "$model" before
fi
if run_stage 2; then
    log_stage 2 "training manifest (replay $mix_original of the original)" "$train" "$out/train_mix.json"
    if [ "$mix_original" != 0 ]; then
        cli manifest merge "$train" "$original_train" --weights 1 "$mix_original" --out "$out/train_mix.json"
    else
        cli manifest merge "$train" --out "$out/train_mix.json"
    fi
fi
if run_stage 3; then
    log_stage 3 "fine-tune" "$out/train_mix.json" "$run_dir"
    # shellcheck disable=SC2086
    cli finetune --config recipes/conf/domain.yaml init.nemo="$model" data.train_manifest="$out/train_mix.json" \
        data.dev_manifest="$dev" exp_manager.exp_dir="$out/finetune" $overrides
fi
if run_stage 4; then
    log_stage 4 "evaluate after" "$run_dir" "$out/RESULTS.md"
    evaluate_all "$(ls "$run_dir"/checkpoints/*.nemo | head -1)" after
    "$PY" -m asr_transfer.training.report domain "$out" > "$out/RESULTS.md"
    cat "$out/RESULTS.md"
fi
if run_stage 5; then
    log_stage 5 "export" "$run_dir" "$out/model_domain.nemo"
    cli export --run "$run_dir" --out "$out/model_domain.nemo"
fi
