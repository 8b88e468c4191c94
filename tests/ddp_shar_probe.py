"""Fine-tuning under DDP with a probe: each rank appends the audio lengths (samples) of every training
batch it sees to ``PROBE_DIR/rank<N>.txt``, so a test can check which clips reached which rank. Rank 1
builds each checkpoint 3 s late, so rank 0 has written the checkpoint file before rank 1's NeMo callback
looks for it: the race that deadlocked NeMo's ``.nemo`` save under DDP happens on every run, and only
``grafts.rank_zero_decides_best_checkpoint`` lets the run end.

In: ``python tests/ddp_shar_probe.py PROBE_DIR CONFIG [overrides...]`` (Lightning's launcher reruns this
same command line in the other ranks). Out: the run, and one lengths file per rank.
"""

from __future__ import annotations

import os
import sys
import time

import lightning.pytorch as pl

from asr_transfer.training.config import load_config
from asr_transfer.training.finetune import finetune


class BatchLengths(pl.Callback):
    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        lengths = [int(value) for value in batch[1].tolist()]
        with open(os.path.join(self.folder, f"rank{trainer.global_rank}.txt"), "a", encoding="utf-8") as handle:
            handle.write("".join(f"{value}\n" for value in lengths))

    def state_dict(self) -> dict:
        # Lightning asks every callback's state_dict before any on_save_checkpoint, NeMo's included
        if int(os.environ.get("LOCAL_RANK", 0)) != 0:
            time.sleep(3)
        return {}


def main(argv: list[str]) -> int:
    probe_dir, config, *overrides = argv
    finetune(load_config(config, overrides), callbacks=(BatchLengths(probe_dir),))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
