# Shared driver of the Common Voice transfer recipes (recipes/<lang>/run.sh sets lang and base, then
# sources this file with the command line). Stages:
#   0 check input   1 manifests   2 tokenizer   3 fine-tune   4 evaluate dev and test   5 export
# Options: --stage N --stop_stage N --base quartznet|conformer|citrinet --bpe_size N --out DIR
#          --init_nemo BASE.nemo (instead of downloading the base) --jobs N
#          --overrides "key=value ..." (passed to asr-transfer finetune)
set -euo pipefail
stage=0; stop_stage=100; bpe_size=1024; out=exp/$lang; jobs=$(nproc); init_nemo=""; overrides=""
. "$(dirname "${BASH_SOURCE[0]}")/stages.sh" "$@"
[ $# -ge 1 ] || { sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; echo "error: give CV_DIR_OR_TARBALL" >&2; exit 2; }
source_path=$1
PY=${PYTHON:-.venv/bin/python}
cli() { "$PY" -m asr_transfer.cli "$@"; }

case "$base" in
    quartznet) conf=recipes/conf/quartznet15x5_char.yaml; kind=char ;;
    conformer) conf=recipes/conf/conformer_ctc_bpe.yaml; kind=bpe ;;
    citrinet)  conf=recipes/conf/citrinet_zh_char.yaml; kind=char ;;
    *) echo "error: --base must be quartznet, conformer or citrinet" >&2; exit 2 ;;
esac
data=$out/data
tokenizers=$out/tokenizers
if [ "$kind" = char ]; then vocab_dir=$tokenizers/$lang/char; else vocab_dir=$tokenizers/$lang/spe_bpe_v$bpe_size; fi
run_dir=$out/finetune/run/v1
model=$out/${lang}_${base}.nemo
init_args=(); [ -n "$init_nemo" ] && init_args=(init.nemo="$init_nemo")

if run_stage 0; then
    log_stage 0 "check input" "$source_path" "$data/extracted (tarballs only)"
    cli prepare-cv "$source_path" "$data" --lang "$lang" --check-only
fi
if run_stage 1; then
    log_stage 1 "manifests" "$source_path" "$data/{train,dev,test}.json"
    cli prepare-cv "$source_path" "$data" --lang "$lang" --jobs "$jobs"
fi
if run_stage 2; then
    log_stage 2 "tokenizer ($kind)" "$data/train.json" "$vocab_dir"
    if [ "$kind" = char ]; then
        cli train-tokenizer "$tokenizers" --manifest "$data/train.json" --lang "$lang" --kind char
    else
        cli train-tokenizer "$tokenizers" --manifest "$data/train.json" --lang "$lang" --kind bpe --vocab-size "$bpe_size"
    fi
fi
if run_stage 3; then
    log_stage 3 "fine-tune $base" "$data/train.json" "$run_dir"
    # shellcheck disable=SC2086  # overrides are separate key=value words
    cli finetune --config "$conf" vocab.dir="$vocab_dir" data.train_manifest="$data/train.json" \
        data.dev_manifest="$data/dev.json" exp_manager.exp_dir="$out/finetune" "${init_args[@]}" $overrides
fi
if run_stage 4; then
    for split in dev test; do
        log_stage 4 "evaluate $split" "$run_dir" "$out/eval_$split/summary.json"
        cli evaluate --model "$(ls "$run_dir"/checkpoints/*.nemo | head -1)" --manifest "$data/$split.json" \
            --out "$out/eval_$split"
    done
fi
if run_stage 5; then
    log_stage 5 "export" "$run_dir" "$model"
    cli export --run "$run_dir" --out "$model"
fi
