#!/usr/bin/env bash
# Russian Common Voice: English QuartzNet 15x5 -> Russian characters (--base conformer: Conformer-CTC -> BPE).
# Usage: recipes/ru/run.sh CV_DIR_OR_TARBALL [--stage N] [--stop_stage N] [--base quartznet|conformer]
#        [--init_nemo BASE.nemo] [--overrides "trainer.max_steps=50000 ..."]
cd "$(dirname "$0")/../.."
lang=ru
base=quartznet
. recipes/lib/cv_transfer.sh "$@"
