#!/usr/bin/env bash
# The GPU check as one command: make NeMo importable beside the machine's own torch, then print the
# figures of tools/gpu_check.py (throughput and peak memory in fp32 and bf16, a bf16 recipe route through
# export, CUDA-graph and beam+LM decoding speed), one `name: value unit` line each.
# In: the tree, and .gpu_wheels/ (tools/build_gpu_wheelhouse.sh) where NeMo is not installed.
# Out: stdout; with $OUT set (the device tool's output folder), also $OUT/gpu_check.log and .json.
# Usage: tools/gpu_check.sh [tools/gpu_check.py options]   (--smoke: tiny sizes; the default without CUDA)
# On a lent GPU machine (no internet; Python 3.12 with torch, lightning, onnxruntime, sentencepiece):
#   run(command="bash tools/gpu_check.sh", carry=[".gpu_wheels"], timeout_s=540)
# The wheels go into a --target folder put first on PYTHONPATH rather than a venv: the machine's python3 is
# itself a venv (/opt/torch/.venv), and a venv made from it with --system-site-packages would see the base
# interpreter's packages, not that venv's torch. First on the path, the carried lightning 2.4.0 (what
# NeMo 3.0.0 accepts) shadows the machine's newer one. --no-deps: nothing resolves against an index.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
WHEELS=${GPU_WHEELS:-.gpu_wheels}
SITE=${GPU_SITE:-/tmp/gpu_check_site}
started=$(date +%s)
if "$PY" -c "import nemo.collections.asr" >/dev/null 2>&1; then
    echo "gpu_check: NeMo is importable by $PY; installing nothing"
else
    if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
        echo "gpu_check: NeMo is not importable and $WHEELS holds no wheels; build them with" \
            "tools/build_gpu_wheelhouse.sh and carry $WHEELS" >&2
        exit 2
    fi
    echo "gpu_check: installing $(ls "$WHEELS"/*.whl | wc -l) wheels from $WHEELS into $SITE"
    "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$SITE" "$WHEELS"/*.whl
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    echo "gpu_check: installed in $(($(date +%s) - started)) s"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # asr_transfer from the tree itself
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1  # nothing can be reached there: fail fast, never wait on a hub
args=("$@")
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
    args+=(--json "$OUT/gpu_check.json")
    "$PY" tools/gpu_check.py "${args[@]}" 2>&1 | tee "$OUT/gpu_check.log"
else
    "$PY" tools/gpu_check.py "${args[@]}"
fi
