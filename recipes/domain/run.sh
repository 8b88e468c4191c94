#!/usr/bin/env bash
# Adapt a model to a new domain with a new manifest, and measure what it forgot.
# Usage: recipes/domain/run.sh --model BASE.nemo --train NEW.json --dev NEW_DEV.json [options]
#        (relative paths are taken from the current directory)
#   Stage 0: check inputs
#   Stage 1: WER of the base on the new domain (and the original one): before
#   Stage 2: training manifest: the new domain, plus a fraction F of the original data replayed
#   Stage 3: fine-tune (same vocabulary, recipes/conf/domain.yaml)
#   Stage 4: WER after, on both domains; RESULTS.md with before/after and what was forgotten
#   Stage 5: export
set -euo pipefail
. "$(dirname "$0")/../lib/stages.sh"
option model "" "the base .nemo to adapt"
option train "" "training manifest of the new domain"
option dev "" "dev manifest of the new domain"
option original_dev "" "dev manifest of the original domain, to measure forgetting"
option original_train "" "training manifest of the original domain, for --mix_original"
option mix_original 0 "fraction of --original_train replayed during training"
option lang "" "language of the domain (picks the primary metric: CER for yue, zh-HK, zh; WER otherwise)"
option out exp/domain "output folder"
option overrides "" "asr-transfer finetune overrides, e.g. \"trainer.max_steps=500\""
parse_options "$@"
export ASR_TRANSFER_BASE_OPTION=--model
finetune_args=(--config "$repo/recipes/conf/domain.yaml" init.nemo="$model" data.train_manifest="$out/train_mix.json"
    data.dev_manifest="$dev" exp_manager.exp_dir="$out/finetune")
[ -n "$lang" ] && finetune_args+=(lang="$lang")
# shellcheck disable=SC2206  # overrides are separate key=value words
finetune_args+=($overrides)
run_dir=$(cli finetune "${finetune_args[@]}" --print run-dir)
exported=$out/$(cli finetune "${finetune_args[@]}" --print model-name).nemo

if run_stage 0; then
    log_stage 0 "check inputs" "$model $train $dev" "-"
    for f in "$model" "$train" "$dev"; do
        [ -f "$f" ] || { echo "error: --model, --train and --dev must be files (${f:-none given}); see --help" >&2; exit 2; }
    done
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
    cli finetune "${finetune_args[@]}"
fi
if run_stage 4; then
    best=$(cli export --print-best "$run_dir")
    log_stage 4 "evaluate after" "$best" "$out/RESULTS.md"
    evaluate_all "$best" after
    cli report domain "$out" > "$out/RESULTS.md"
    cat "$out/RESULTS.md"
fi
if run_stage 5; then
    log_stage 5 "export" "$run_dir" "$exported"
    cli export --run "$run_dir" --out "$exported"
fi
