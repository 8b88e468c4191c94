#!/usr/bin/env bash
# Offline demo on synthetic German Common Voice (what `make demo` runs).
# Usage: recipes/demo/run.sh [--stage N] [--stop_stage N] [--clips N] [--out DIR] [--jobs N]
#   Stage 0: synthesize a German Common Voice release with espeak-ng voices
#   Stage 1: build NeMo manifests from it (prepare-cv)
#   Stage 2: train the character vocabulary and a SentencePiece BPE tokenizer
#   Stage 3: print the data summary
set -euo pipefail
cd "$(dirname "$0")/../.."
stage=0; stop_stage=100; clips=400; out=demo_out; jobs=$(nproc); lang=de; bpe_size=64
. recipes/lib/stages.sh "$@"
PY=${PYTHON:-.venv/bin/python}
cli() { "$PY" -m asr_transfer.cli "$@"; }

corpus=$out/cv_synthetic
data=$out/data/$lang
tokenizers=$out/tokenizers

if run_stage 0; then
    log_stage 0 "synthesize Common Voice ($clips clips, faults planted)" "espeak-ng" "$corpus"
    cli synth-cv "$corpus" --lang "$lang" --clips "$clips" --faults --jobs "$jobs"
fi
if run_stage 1; then
    log_stage 1 "manifests" "$corpus" "$data/{train,dev,test}.json"
    cli prepare-cv "$corpus" "$data" --lang "$lang" --jobs "$jobs"
fi
if run_stage 2; then
    log_stage 2 "tokenizers" "$data/train.json" "$tokenizers/$lang/{char,spe_bpe_v$bpe_size}"
    cli train-tokenizer "$tokenizers" --manifest "$data/train.json" --lang "$lang" --kind char
    cli train-tokenizer "$tokenizers" --manifest "$data/train.json" --lang "$lang" --kind bpe \
        --vocab-size "$bpe_size" 2>&1 | grep -v '^I0000\|^trainer_spec\|^normalizer_spec\|^denormalizer\|^}\|^  ' || true
    [ -f "$tokenizers/$lang/spe_bpe_v$bpe_size/tokenizer.model" ]
fi
if run_stage 3; then
    log_stage 3 "summary" "$data" "stdout"
    cli manifest stats "$data/train.json" "$data/dev.json" "$data/test.json" | grep -v '^  characters'
    echo "rejected rows and reasons: $data/rejects.tsv"
    echo "character vocabulary ($(wc -l < "$tokenizers/$lang/char/vocab.txt") labels): $tokenizers/$lang/char/vocab.txt"
fi
