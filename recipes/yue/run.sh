#!/usr/bin/env bash
# Cantonese Common Voice (yue, or zh-HK with --lang zh-HK): Mandarin Citrinet-512 -> Cantonese characters.
# Usage: recipes/yue/run.sh CV_DIR_OR_TARBALL [options]   (relative paths are taken from the current directory)
#   Stage 0: check input   1: manifests   2: tokenizer   3: fine-tune   4: evaluate dev and test   5: export   6: n-gram LM
lang=yue
base=citrinet
. "$(dirname "$0")/../lib/cv_transfer.sh" "$@"
