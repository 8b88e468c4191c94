# Shared driver of the Common Voice transfer recipes: recipes/<lang>/run.sh sets lang and base and its
# header comment, then sources this file with the command line (recipes/cv/run.sh, for any locale, sets
# new_language=1: stage 0 then writes OUT/languages/LANG.yaml with `asr-transfer new-language` when no
# language file for LANG exists, and every stage searches OUT/languages through ASR_TRANSFER_LANGUAGES). Stages:
#   0 check input   1 manifests   2 tokenizer   3 fine-tune   4 evaluate dev and test   5 export
#   6 n-gram LM (train-lm on train + validated_sentences.tsv, dev/test excluded), tuned on dev, test with it
# With --filter_cer X (> 0) stage 3 also cleans train with its model (asr-transfer filter: lines whose CER is
# above X go) and fine-tunes a second run, <exp_manager.name>_filtered, on what is left; stages 4-6 use that run.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/stages.sh"
option lang "$lang" "language (a file of asr_transfer/languages or of \$ASR_TRANSFER_LANGUAGES)"
option base "$base" "quartznet (characters), conformer (SentencePiece BPE) or citrinet (characters)"
option config "" "fine-tuning config instead of --base's (e.g. recipes/conf/tiny_quartznet_char.yaml)"
option bpe_size 1024 "SentencePiece vocabulary size, for a BPE config"
option out "" "output folder, relative to the current directory (default exp/LANG)"
option jobs "$(nproc)" "worker processes for data preparation"
option init_nemo "" "a local base .nemo, instead of --base's pretrained model"
option overrides "" "asr-transfer finetune overrides, e.g. \"trainer.max_steps=50000\""
option lm_order 5 "order of stage 6's token n-gram LM"
option shar 0 "write train as N Lhotse Shar shards (N a multiple of GPUs x nodes) and fine-tune from them; 0: WAV clips"
option dev_split dev "split that picks the best checkpoint and tunes the LM (test for a release whose dev.tsv is empty)"
option filter_cer 0 "X > 0: stage 3 drops train lines whose CER under its model is above X (NeMo SDP uses 0.65) and trains again; 0: off"
parse_options "$@"; set -- "${positional[@]+"${positional[@]}"}"
[ $# -eq 1 ] || { echo "error: give one CV_DIR_OR_TARBALL; $(basename "$0") --help explains" >&2; exit 2; }
source_path=$1
[ -n "$lang" ] || { echo "error: no language given; pass --lang CODE (the Common Voice locale)" >&2; exit 2; }
case "$dev_split" in dev|test) ;; *) echo "error: --dev_split $dev_split is unknown; use dev or test" >&2; exit 2 ;; esac
[[ $filter_cer =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ ]] || { echo "error: --filter_cer $filter_cer is not a number; give a CER such as 0.65, or 0 for no filtering" >&2; exit 2; }
filtering=0; awk -v x="$filter_cer" 'BEGIN { exit !(x > 0) }' && filtering=1
if [ "$filtering" = 1 ] && [ "$shar" -gt 0 ]; then
    # shards hold the audio, and train.json then lists no clip files that filter could transcribe
    echo "error: --filter_cer and --shar cannot be combined; filter on WAV clips (--shar 0), or shard a filtered manifest yourself with asr-transfer shard" >&2; exit 2
fi
out=${out:-exp/$lang}
languages=$out/languages
if [ "${new_language:-0}" = 1 ]; then
    export ASR_TRANSFER_LANGUAGES=$languages${ASR_TRANSFER_LANGUAGES:+:$ASR_TRANSFER_LANGUAGES}
fi
# Errors about the base name the recipe's option, not the config key.

case "$base" in
    quartznet) conf=$repo/recipes/conf/quartznet15x5_char.yaml ;;
    conformer) conf=$repo/recipes/conf/conformer_ctc_bpe.yaml ;;
    citrinet)  conf=$repo/recipes/conf/citrinet_zh_char.yaml ;;
    *) echo "error: --base $base is unknown; use quartznet, conformer or citrinet" >&2; exit 2 ;;
esac
conf=${config:-$conf}
data=$out/data
tokenizers=$out/tokenizers
kind=$(cli finetune --config "$conf" --print vocab.kind)
vocab_dir=$(cli train-tokenizer "$tokenizers" --lang "$lang" --kind "$kind" --vocab-size "$bpe_size" --print-dir)
finetune_args=(--config "$conf" --exp-dir "$out/finetune" --option-name init.nemo=--init_nemo lang="$lang"
    vocab.dir="$vocab_dir" data.train_manifest="$data/train.json" data.dev_manifest="$data/$dev_split.json")
[ -n "$init_nemo" ] && finetune_args+=(init.nemo="$init_nemo")
prepare_args=(--lang "$lang" --jobs "$jobs")
train_data=$data/train.json
if [ "$shar" -gt 0 ]; then
    train_data=$(cli prepare-cv "$source_path" "$data" --lang "$lang" --print-shar-dir)
    prepare_args+=(--shar "$shar" --audio-format flac)
    finetune_args+=(data.shar_path="$train_data")
fi
# shellcheck disable=SC2206  # overrides are separate key=value words
finetune_args+=($overrides)
run_dir=$(cli finetune "${finetune_args[@]}" --print run-dir)
if [ "$filtering" = 1 ]; then
    filtered_train=$data/train_filtered.json
    first_run_dir=$run_dir
    filtered_args=("${finetune_args[@]}" data.train_manifest="$filtered_train"
        exp_manager.name="$(cli finetune "${finetune_args[@]}" --print exp_manager.name)_filtered")
    run_dir=$(cli finetune "${filtered_args[@]}" --print run-dir)  # what stages 4-6 use
fi
model=$out/$(cli finetune "${finetune_args[@]}" --print model-name).nemo

if run_stage 0; then
    if [ "${new_language:-0}" = 1 ] && [ -z "$(cli new-language "$lang" --print-path)" ]; then
        log_stage 0 "language file (new-language)" "$source_path" "$languages/$lang.yaml"
        cli new-language "$lang" --from "$source_path" --out "$languages/$lang.yaml" --extract-dir "$data/extracted"
    fi
    extracted=-; [ -f "$source_path" ] && extracted=$data/extracted
    log_stage 0 "check input" "$source_path" "$extracted"
    cli prepare-cv "$source_path" "$data" --lang "$lang" --check-only
fi
if run_stage 1; then
    log_stage 1 "manifests" "$source_path" "$data/{train,dev,test}.json"
    cli prepare-cv "$source_path" "$data" "${prepare_args[@]}"
fi
if run_stage 2; then
    log_stage 2 "tokenizer ($kind)" "$data/train.json" "$vocab_dir"
    cli train-tokenizer "$tokenizers" --manifest "$data/train.json" --lang "$lang" --kind "$kind" --vocab-size "$bpe_size"
fi
if run_stage 3; then
    if [ "$filtering" = 1 ]; then
        log_stage 3 "fine-tune ($(basename "$conf" .yaml)), to filter with" "$train_data" "$first_run_dir"
        cli finetune "${finetune_args[@]}"
        log_stage 3 "filter train (CER <= $filter_cer under the first model)" "$data/train.json" "$filtered_train"
        cli filter --model "$(cli export --print-best "$first_run_dir")" --manifest "$data/train.json" \
            --lang "$lang" --max-cer "$filter_cer" --out "$filtered_train"
        log_stage 3 "fine-tune ($(basename "$conf" .yaml)) on the filtered train" "$filtered_train" "$run_dir"
        cli finetune "${filtered_args[@]}"
    else
        log_stage 3 "fine-tune ($(basename "$conf" .yaml))" "$train_data" "$run_dir"
        cli finetune "${finetune_args[@]}"
    fi
fi
if run_stage 4; then
    best=$(cli export --print-best "$run_dir")
    for split in $(printf '%s\n' "$dev_split" test | sort -u); do
        log_stage 4 "evaluate $split" "$best" "$out/eval_$split/summary.json"
        cli evaluate --model "$best" --manifest "$data/$split.json" --lang "$lang" --out "$out/eval_$split"
    done
fi
if run_stage 5; then
    log_stage 5 "export" "$run_dir" "$model"
    cli export --run "$run_dir" --out "$model"
fi
if run_stage 6; then
    lm=$out/lm/$(basename "$vocab_dir")_${lm_order}gram.arpa
    log_stage 6 "n-gram LM, tuned on $dev_split" "$data/train.json" "$lm"
    cli train-lm --prepared "$data" --model "$model" --order "$lm_order" "$lm"
    cli tune-lm --model "$model" --lm "$lm" --manifest "$data/$dev_split.json" --lang "$lang" --out "$out/lm/params.json"
    log_stage 6 "evaluate test with the LM" "$out/lm/params.json" "$out/eval_test_lm/summary.json"
    cli evaluate --model "$model" --manifest "$data/test.json" --lang "$lang" --lm-params "$out/lm/params.json" --out "$out/eval_test_lm"
fi
