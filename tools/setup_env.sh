#!/usr/bin/env bash
# Create .venv and install everything the project needs, once: a rerun with unchanged setup files
# installs nothing. Without an NVIDIA GPU the CPU build of torch is installed (never the multi-GB CUDA
# build); with one, the CUDA build. Set TORCH_INDEX_URL to take torch from another index
# (e.g. https://download.pytorch.org/whl/cpu on a machine whose pip would pick a CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
TORCH_VERSION=2.13.0
stamp="$VENV/.installed"
want=$(cat setup.cfg pyproject.toml tools/setup_env.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
echo "setup: creating $VENV and installing asr-transfer (once)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip_install() { "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@"; }
torch_args=("torch==$TORCH_VERSION")
[ -n "${TORCH_INDEX_URL:-}" ] && torch_args+=(--index-url "$TORCH_INDEX_URL")
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found: installing the CUDA build of torch $TORCH_VERSION"
else
    echo "setup: no NVIDIA GPU: installing the CPU build of torch $TORCH_VERSION"
fi
pip_install "${torch_args[@]}"
pip_install -e ".[test]"
"$VENV/bin/python" - <<'PY'
import torch
import espeakng_loader  # noqa: F401  (espeak-ng library and voices for synthetic speech)
print(f"setup: torch {torch.__version__} (CUDA {torch.version.cuda or 'none'}), espeak-ng ready")
PY
echo "$want" > "$stamp"
