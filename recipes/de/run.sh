#!/usr/bin/env bash
# German Common Voice: English QuartzNet 15x5 -> German characters (--base conformer: Conformer-CTC -> BPE).
# Usage: recipes/de/run.sh CV_DIR_OR_TARBALL [options]   (relative paths are taken from the current directory)
#   Stage 0: check input   1: manifests   2: tokenizer   3: fine-tune   4: evaluate dev and test   5: export   6: n-gram LM
lang=de
base=quartznet
. "$(dirname "$0")/../lib/cv_transfer.sh" "$@"
