#!/usr/bin/env bash
# Build .gpu_wheels/: the wheels tools/gpu_check.sh installs on a GPU machine that has no internet.
# In: PyPI (pip download) and, for packages published only as source, a local build of a pure-Python
# wheel. Out: .gpu_wheels/*.whl for CPython 3.12 on manylinux x86_64, one version of each package (the
# versions this project is tested with), and the total size on stdout.
#
# The GPU machine (README "GPU check") already holds torch, lightning's companions, numpy, scipy, pandas,
# transformers, onnx, onnxruntime, sentencepiece and the rest of its image; the list below is what
# `import nemo.collections.asr` and asr-transfer's fine-tune/export/decode path import beyond that image,
# found by mapping the modules a run here imports to their distributions. Every wheel is fetched with
# --no-deps, so nothing pulls torch or a second numpy. lightning is carried although the machine has one:
# NeMo 3.0.0 asks for lightning<=2.4.0 and the image's is newer.
# The whole tree plus this folder travels to the machine, 64 MiB at most: the script fails above BUDGET_MB.
# Usage: tools/build_gpu_wheelhouse.sh [OUT_DIR]   (default .gpu_wheels; PYTHON=... picks the pip)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-.gpu_wheels}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
BUDGET_MB=${BUDGET_MB:-40}   # the tree itself is about 21 MiB of the 64 the machine takes

# name==version; binary ones need a cp312 manylinux wheel on PyPI.
PACKAGES=(
    nemo_toolkit==3.0.0
    lightning==2.4.0
    hydra-core==1.3.2
    omegaconf==2.3.0
    lhotse==1.33.0
    jiwer==4.0.0
    rapidfuzz==3.14.6
    kaldialign==0.12.0
    librosa==0.11.0
    audioread==3.1.0
    decorator==5.3.1
    pooch==1.9.0
    platformdirs==4.14.8
    soundfile==0.14.0
    soxr==1.1.0
    cffi==2.1.1
    pycparser==3.12
    cytoolz==1.2.0
    intervaltree==3.2.1
    braceexpand==0.1.7
    webdataset==1.0.2
    datasets==5.2.0
    dill==0.4.1
    multiprocess==0.70.19
    pydantic==2.14.4
    pydantic_core==2.50.5
    annotated-types==0.8.0
    typing-inspection==0.4.5
    overrides==7.7.0
    StrEnum==0.4.15
    toml==0.10.2
    sniffio==1.3.1
    truststore==0.10.5
    googleapis-common-protos==1.76.0
    text-unidecode==1.3
    smart_open==9.0.2
    nv-one-logger-core==2.3.1
    nv-one-logger-training-telemetry==2.3.1
    nv-one-logger-pytorch-lightning-integration==2.3.1
    espeakng-loader==0.2.4   # espeak-ng and its voices: the recipe route's synthetic speech (10 MB)
)
# Published as source only: built here into a pure-Python (py3-none-any) wheel.
SOURCE_ONLY=(antlr4-python3-runtime==4.9.3)

mkdir -p "$OUT"
platforms=()
for tag in manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_27_x86_64 manylinux_2_28_x86_64 \
    manylinux_2_31_x86_64 manylinux_2_34_x86_64 manylinux_2_35_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$tag")
done
pip_q=("$PY" -m pip --disable-pip-version-check -q)
for spec in "${PACKAGES[@]}"; do
    name=${spec%%==*}
    glob=$(echo "$name" | tr 'A-Z-' 'a-z_')
    if ls "$OUT" | tr 'A-Z-' 'a-z_' | grep -q "^${glob}-${spec##*==}-"; then continue; fi
    "${pip_q[@]}" download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d "$OUT" "$spec"
done
for spec in "${SOURCE_ONLY[@]}"; do
    glob=$(echo "${spec%%==*}" | tr 'A-Z-' 'a-z_')
    if ls "$OUT" | tr 'A-Z-' 'a-z_' | grep -q "^${glob}-"; then continue; fi
    "${pip_q[@]}" wheel --no-deps -w "$OUT" "$spec"
done
# Two versions of one package would make the install ambiguous: keep the list's.
dupes=$(ls "$OUT"/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d)
[ -z "$dupes" ] || { echo "build_gpu_wheelhouse: more than one wheel of: $dupes; delete $OUT and rebuild" >&2; exit 1; }
# Every wheel must install on CPython 3.12 manylinux x86_64 (checked here without installing anything).
"${pip_q[@]}" install --dry-run --no-index --no-deps --ignore-installed --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" --target "$(mktemp -d)" "$OUT"/*.whl
size_kb=$(du -sk "$OUT" | cut -f1)
echo "build_gpu_wheelhouse: $(ls "$OUT"/*.whl | wc -l) wheels, $((size_kb / 1024)) MiB in $OUT"
if [ "$size_kb" -gt $((BUDGET_MB * 1024)) ]; then
    echo "build_gpu_wheelhouse: over the ${BUDGET_MB} MiB budget (the tree travels too, 64 MiB in all)" >&2
    exit 1
fi
