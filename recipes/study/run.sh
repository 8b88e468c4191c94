#!/usr/bin/env bash
# Transfer study: arms x data budgets with the same steps and seeds; RESULTS.md, CSVs and plots.
# Usage: recipes/study/run.sh [--config recipes/study/conf/de_synthetic.yaml] [--publish docs/results/NAME]
#        [--stage N] [--stop_stage N] [--overrides "steps=40 out_dir=exp/study/quick"]
#   Stage 0: run the study (data, budgets, every run, evaluation, introspection, report)
#   Stage 1: copy RESULTS.md, the CSVs and the plots to --publish (when given)
set -euo pipefail
cd "$(dirname "$0")/../.."
stage=0; stop_stage=100; config=recipes/study/conf/de_synthetic.yaml; publish=""; overrides=""
. recipes/lib/stages.sh "$@"
PY=${PYTHON:-.venv/bin/python}
out=$("$PY" -c "import sys; from asr_transfer.study.grid import load_study_config as l; print(l(sys.argv[1], sys.argv[2:]).out_dir)" "$config" $overrides)

if run_stage 0; then
    log_stage 0 "study" "$config" "$out/RESULTS.md"
    # shellcheck disable=SC2086  # overrides are separate key=value words
    "$PY" -m asr_transfer.cli study --config "$config" $overrides
fi
if run_stage 1 && [ -n "$publish" ]; then
    log_stage 1 "publish" "$out" "$publish"
    mkdir -p "$publish/inspect"
    cp "$out"/RESULTS.md "$out"/results.csv "$out"/curves.csv "$out"/results.json "$publish/"
    cp "$out"/*.png "$publish/"
    cp "$out"/inspect/*.png "$out"/inspect/*.csv "$publish/inspect/" 2>/dev/null || true
fi
