# Shared driver of the base-training recipes: recipes/<lang>_base/run.sh sets lang, voices (espeak-ng
# voices to speak with; empty: the language's own) and its header comment, then sources this file
# with the command line. Stages:
#   0 synthesize   1 manifests   2 vocabulary   3 train from scratch   4 evaluate on dev and publish
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/stages.sh"
option clips "${clips:-3000}" "clips to synthesize"
option steps "${steps:-3000}" "training steps"
option out "exp/${lang}_base" "output folder"
option seed 7 "seed of the corpus and of training"
option jobs "$(nproc)" "worker processes for synthesis and data preparation"
option model_dir "$repo/recipes/${lang}_base/model" "where the shipped model and its provenance go"
option arch quartznet "quartznet (characters), quartznet_small (the same at twice the width) or fastconformer (SentencePiece BPE)"
option bpe_size 128 "SentencePiece vocabulary size, for --arch fastconformer"
option note "" "a line added to the provenance note (e.g. how a run was cut short)"
parse_options "$@"

case "$arch" in
    quartznet) conf=$repo/recipes/conf/tiny_quartznet_char.yaml; kind=char; model_name=${lang}_tiny_quartznet_char ;;
    quartznet_small) conf=$repo/recipes/conf/small_quartznet_char.yaml; kind=char; model_name=${lang}_small_quartznet_char ;;
    fastconformer) conf=$repo/recipes/conf/tiny_fastconformer_bpe.yaml; kind=bpe; model_name=${lang}_tiny_fastconformer_bpe$bpe_size ;;
    *) echo "error: --arch $arch is unknown; use quartznet, quartznet_small or fastconformer" >&2; exit 2 ;;
esac

corpus=$out/cv_$lang
data=$out/data
tokenizers=$out/tokenizers
vocab=$(cli train-tokenizer "$tokenizers" --lang "$lang" --kind "$kind" --vocab-size "$bpe_size" --print-dir)
model=$model_dir/$model_name.nemo
finetune_args=(--config "$conf" --exp-dir "$out/train_$arch" --steps "$steps" --val-every 250 --seed "$seed"
    lang="$lang" init.scratch=true vocab.dir="$vocab" data.train_manifest="$data/train.json"
    data.dev_manifest="$data/dev.json")
run_dir=$(cli finetune "${finetune_args[@]}" --print-run-dir)
command="recipes/${lang}_base/run.sh --arch $arch --clips $clips --steps $steps --seed $seed"
[ "$kind" = bpe ] && command+=" --bpe_size $bpe_size"

if run_stage 0; then
    log_stage 0 "synthesize $lang Common Voice ($clips clips; voices: ${voices:-its own})" "espeak-ng" "$corpus"
    voice_args=(); for voice in $voices; do voice_args+=(--accent "$voice"); done
    cli synth-cv "$corpus" --lang "$lang" --clips "$clips" --seed "$seed" "${voice_args[@]+"${voice_args[@]}"}" --jobs "$jobs"
fi
if run_stage 1; then
    log_stage 1 "manifests" "$corpus" "$data/{train,dev,test}.json"
    cli prepare-cv "$corpus" "$data" --lang "$lang" --jobs "$jobs"
fi
if run_stage 2; then
    log_stage 2 "$kind vocabulary" "$data/train.json" "$vocab"
    cli train-tokenizer "$tokenizers" --manifest "$data/train.json" --lang "$lang" --kind "$kind" --vocab-size "$bpe_size"
fi
if run_stage 3; then
    log_stage 3 "train from scratch ($steps steps)" "$data/train.json" "$run_dir"
    cli finetune "${finetune_args[@]}"
fi
if run_stage 4; then
    log_stage 4 "evaluate and publish" "$run_dir" "$model"
    cli export --run "$run_dir" --out "$model"
    cli evaluate --model "$model" --manifest "$data/dev.json" --out "$out/eval_dev_$arch"
    cli provenance "$model" --config "$run_dir/finetune_config.yaml" --eval "$out/eval_dev_$arch/summary.json" \
        --note "synthetic $lang Common Voice, $clips clips, seed $seed, voices: ${voices:-its own}; command: $command${note:+; $note}"
fi
