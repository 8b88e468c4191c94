#!/usr/bin/env bash
# Any Common Voice locale: English QuartzNet 15x5 -> the locale's characters (--base conformer: Conformer-CTC -> BPE).
# Usage: recipes/cv/run.sh CV_DIR_OR_TARBALL --lang CODE [options]   (relative paths are taken from the current directory)
#   Stage 0: language file and check input: with no language file for CODE (built in, or in $ASR_TRANSFER_LANGUAGES),
#            `asr-transfer new-language` writes a draft OUT/languages/CODE.yaml (and CODE.report.md) from the
#            release's text; every stage then finds it (OUT/languages is put first in ASR_TRANSFER_LANGUAGES)
#   1: manifests   2: tokenizer   3: fine-tune   4: evaluate dev and test   5: export   6: n-gram LM
#   A release whose dev.tsv is empty (small locales): --dev_split test
lang=""
base=quartznet
new_language=1
. "$(dirname "$0")/../lib/cv_transfer.sh" "$@"
