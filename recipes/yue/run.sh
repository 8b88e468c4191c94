#!/usr/bin/env bash
# Cantonese Common Voice (yue, or zh-HK with --lang zh-HK): Mandarin Citrinet-512 -> Cantonese characters.
# Usage: recipes/yue/run.sh CV_DIR_OR_TARBALL [--lang zh-HK] [--stage N] [--stop_stage N]
#        [--init_nemo BASE.nemo] [--overrides "trainer.max_steps=50000 ..."]
cd "$(dirname "$0")/../.."
lang=yue
base=citrinet
. recipes/lib/cv_transfer.sh "$@"
