#!/usr/bin/env bash
# Adapt a model to a new domain with a new manifest, and measure what it forgot.
# Usage: recipes/domain/run.sh --model BASE.nemo --train NEW.json --dev NEW_DEV.json [options]
#        (relative paths are taken from the current directory)
#   Stage 0: check inputs
#   Stage 1: WER of the base on the new domain (and the original one): before
#   Stage 2: training manifest: the new domain, plus a fraction F of the original data replayed;
#            with --noise DIR / --rir DIR, noise and room-response manifests (prepare-noise)
#   Stage 3: fine-tune (same vocabulary, recipes/conf/domain.yaml; --noise/--rir: NeMo's noise and
#            impulse perturbations, data.noise_snr_db from --noise_snr)
#   Stage 4: WER after, on both domains; RESULTS.md with before/after and what was forgotten
#   Stage 5: export
#   Stage 6 (with --domain_text and/or --boost): n-gram LM of the domain's text (train-lm --text, dev and
#            --test sentences excluded) tuned on dev (tune-lm), phrase boosting weight tuned on dev
#            (tune-boost), and the dev (and --test) WER with each: $out/lm/, $out/eval_lm_*, eval_boost_*
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
option noise "" "folder of noise recordings of the domain (no transcripts), mixed into training audio"
option noise_snr "0,20" "SNR range in dB of --noise, min,max"
option noise_prob 0.5 "share of training utterances that get --noise"
option rir "" "folder of room impulse responses, convolved with training audio"
option rir_prob 0.5 "share of training utterances that get a --rir response"
option domain_text "" "text of the domain, one sentence a line, for an n-gram LM (stage 6)"
option lm_order 6 "order of the domain LM (tokens)"
option lm_alphas "0.1,0.25,0.5,0.75,1.0,1.5" "LM weights tried on dev (tune-lm --alphas)"
option lm_betas "0,0.5,1,2" "length bonuses tried on dev (tune-lm --betas)"
option boost_alphas "0,0.25,0.5,1,1.5,2" "boost weights tried on dev (tune-boost --alphas)"
option boost "" "phrase list to boost in decoding, one term a line with an optional weight (stage 6)"
option test "" "test manifest of the new domain, decoded in stage 6 (never used for tuning)"
parse_options "$@"
finetune_args=(--config "$repo/recipes/conf/domain.yaml" --exp-dir "$out/finetune" --option-name init.nemo=--model
    init.nemo="$model" data.train_manifest="$out/train_mix.json" data.dev_manifest="$dev")
lang_args=()  # --lang for every evaluation: the language's metric is the primary one, as in training
if [ -n "$lang" ]; then
    finetune_args+=(lang="$lang")
    lang_args=(--lang "$lang")
fi
if [ -n "$noise" ]; then
    finetune_args+=(data.noise_manifest="$out/noise/noise.json" "data.noise_snr_db=[$noise_snr]" data.noise_prob="$noise_prob")
fi
[ -n "$rir" ] && finetune_args+=(data.rir_manifest="$out/rir/rir.json" data.rir_prob="$rir_prob")
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
    for d in "$noise" "$rir"; do
        [ -z "$d" ] || [ -d "$d" ] || { echo "error: --noise and --rir must be folders of recordings ($d is not); see --help" >&2; exit 2; }
    done
    for f in "$domain_text" "$boost" "$test"; do
        [ -z "$f" ] || [ -f "$f" ] || { echo "error: --domain_text, --boost and --test must be files ($f is not); see --help" >&2; exit 2; }
    done
    cli manifest validate "$train" "$dev" --no-audio
fi
evaluate_all() {  # $1: model, $2: before|after
    cli evaluate --model "$1" --manifest "$dev" "${lang_args[@]}" --out "$out/eval_$2_new"
    if [ -n "$original_dev" ]; then
        cli evaluate --model "$1" --manifest "$original_dev" "${lang_args[@]}" --out "$out/eval_$2_original"
    fi
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
    if [ -n "$noise" ]; then cli prepare-noise "$noise" "$out/noise" --name noise; fi
    if [ -n "$rir" ]; then cli prepare-noise "$rir" "$out/rir" --name rir --min-duration 0.01; fi
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
if run_stage 6 && { [ -n "$domain_text" ] || [ -n "$boost" ]; }; then
    log_stage 6 "domain LM and phrase boosting, tuned on dev" "${domain_text:-} ${boost:-}" "$out/lm"
    [ -f "$exported" ] || { echo "error: stage 6 needs the export of stage 5 ($exported); run stage 5 first" >&2; exit 2; }
    decode_args=()
    if [ -n "$domain_text" ]; then
        exclude=(--exclude "$dev"); [ -n "$test" ] && exclude+=(--exclude "$test")
        cli train-lm "$out/lm/domain.arpa" --model "$exported" --order "$lm_order" --text "$domain_text" \
            --lang "${lang:-en}" "${exclude[@]}"
        cli tune-lm --model "$exported" --lm "$out/lm/domain.arpa" --manifest "$dev" --out "$out/lm/lm_params.json" \
            --alphas "$lm_alphas" --betas "$lm_betas" "${lang_args[@]}"
        decode_args=(--lm-params "$out/lm/lm_params.json")
    fi
    if [ -n "$boost" ]; then
        cli tune-boost --model "$exported" --boost "$boost" --manifest "$dev" --out "$out/lm/boost.json" \
            --alphas "$boost_alphas" "${decode_args[@]}" "${lang_args[@]}"
    fi
    for split in dev ${test:+test}; do
        manifest=$dev; [ "$split" = test ] && manifest=$test
        if [ -n "$domain_text" ]; then
            cli evaluate --model "$exported" --manifest "$manifest" "${decode_args[@]}" "${lang_args[@]}" --out "$out/eval_lm_$split"
        fi
        if [ -n "$boost" ]; then
            cli evaluate --model "$exported" --manifest "$manifest" "${decode_args[@]}" --boost-params "$out/lm/boost.json" \
                "${lang_args[@]}" --out "$out/eval_boost_$split"
        fi
    done
fi
