#!/usr/bin/env bash
# Train the small Mandarin base that stands in for stt_zh_citrinet_* in the Cantonese recipes: a tiny
# QuartzNet-style character model (arch/tiny_quartznet_char.yaml) trained from scratch on synthetic
# Mandarin Common Voice spoken by espeak-ng's cmn voice. The Mandarin grammar in
# asr_transfer/languages/zh.yaml is written in traditional characters and shares Han characters with
# the Cantonese one, so Mandarin -> Cantonese starts shared characters from trained decoder rows.
# Usage: recipes/zh_base/run.sh [options]   (relative paths are taken from the current directory)
#   Stage 0: synthesize Mandarin Common Voice
#   Stage 1: manifests
#   Stage 2: character vocabulary
#   Stage 3: train from scratch
#   Stage 4: evaluate on dev, copy the model and its provenance to --model_dir
lang=zh
voices=""
clips=2000
steps=2000
. "$(dirname "$0")/../lib/train_base.sh" "$@"
