#!/usr/bin/env bash
# Offline demo (what `make demo` runs): the shipped English base learns German on 2 CPU cores.
# Usage: recipes/demo/run.sh [--stage N] [--stop_stage N] [--clips N] [--steps N] [--val_every N] [--out DIR] [--jobs N]
#   Stage 0: synthesize a German Common Voice release with espeak-ng voices (faults planted)
#   Stage 1: NeMo manifests (prepare-cv)
#   Stage 2: German character vocabulary
#   Stage 3: fine-tune the English base (recipes/en_base/model) on German
#   Stage 4: train the same model from scratch with the same step budget
#   Stage 5: evaluate both on test, export the transferred model
#   Stage 6: RESULTS.md and dev_wer.png (dev WER against steps, both arms)
set -euo pipefail
cd "$(dirname "$0")/../.."
stage=0; stop_stage=100; clips=400; steps=200; val_every=; out=demo_out; jobs=$(nproc); lang=de; seed=0
base=recipes/en_base/model/en_tiny_quartznet_char.nemo
. recipes/lib/stages.sh "$@"
PY=${PYTHON:-.venv/bin/python}
# Validate at least once even in short smoke runs: the report plots the dev curve.
val_every=${val_every:-$(( steps < 25 ? steps : 25 ))}
cli() { "$PY" -m asr_transfer.cli "$@"; }

corpus=$out/cv_synthetic
data=$out/data/$lang
vocab=$out/tokenizers/$lang/char
finetune() {  # $1: arm name, then overrides
    local arm=$1; shift
    cli finetune --config recipes/conf/tiny_quartznet_char.yaml vocab.dir="$vocab" \
        data.train_manifest="$data/train.json" data.dev_manifest="$data/dev.json" trainer.max_steps="$steps" \
        trainer.val_check_interval="$val_every" exp_manager.exp_dir="$out/runs" exp_manager.name="$arm" seed="$seed" \
        trainer.enable_progress_bar=false "$@"
}

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
    cli train-tokenizer "$out/tokenizers" --manifest "$data/train.json" --lang "$lang" --kind char
fi
if run_stage 3; then
    log_stage 3 "fine-tune the English base ($steps steps)" "$base + $data/train.json" "$out/runs/transfer/v1"
    finetune transfer init.nemo="$base"
fi
if run_stage 4; then
    log_stage 4 "train from scratch ($steps steps)" "$data/train.json" "$out/runs/scratch/v1"
    finetune scratch init.scratch=true
fi
if run_stage 5; then
    for arm in transfer scratch; do
        log_stage 5 "evaluate $arm on test" "$out/runs/$arm/v1" "$out/eval_$arm/summary.json"
        cli evaluate --model "$(ls "$out/runs/$arm/v1"/checkpoints/*.nemo | head -1)" --manifest "$data/test.json" \
            --out "$out/eval_$arm"
    done
    log_stage 5 "export" "$out/runs/transfer/v1" "$out/model_de_transfer.nemo"
    cli export --run "$out/runs/transfer/v1" --out "$out/model_de_transfer.nemo"
fi
if run_stage 6; then
    log_stage 6 "report" "$out/runs/{transfer,scratch}/v1" "$out/RESULTS.md, $out/dev_wer.png"
    "$PY" -m asr_transfer.training.report demo "$out" > "$out/RESULTS.md"
    cat "$out/RESULTS.md"
fi
