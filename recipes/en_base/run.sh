#!/usr/bin/env bash
# Train the small English base models that the recipes, the demo and the study start from, from scratch
# on synthetic English Common Voice spoken by espeak-ng voices of six English accents (en-gb-scotland
# and en-029 are held out for the accent-adaptation study):
#   --arch quartznet:     tiny QuartzNet-style, characters (arch/tiny_quartznet_char.yaml, 0.4M parameters)
#   --arch quartznet_small: the same at twice the width (arch/small_quartznet_char.yaml, 1.5M; base-size study)
#   --arch fastconformer: tiny FastConformer-CTC, SentencePiece BPE (arch/tiny_fastconformer_bpe.yaml, 3.3M)
# Usage: recipes/en_base/run.sh [options]   (relative paths are taken from the current directory)
#   Stage 0: synthesize English Common Voice
#   Stage 1: manifests
#   Stage 2: English character vocabulary
#   Stage 3: train from scratch
#   Stage 4: evaluate on dev, copy the model and its provenance to --model_dir
lang=en
voices="en-us en-gb en-gb-x-rp en-us-nyc en-gb-x-gbclan en-gb-x-gbcwmd"
. "$(dirname "$0")/../lib/train_base.sh" "$@"
