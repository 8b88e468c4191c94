"""Lightning callbacks of a fine-tuning run: the dev-WER curve, throughput, and skipped batches.

Out, in the run folder: ``curves/metrics.csv`` (step, seconds, val_wer, val_loss, train_loss at every
validation; in a folder because NeMo's exp_manager moves a resumed run's loose files to ``run_N/``)
and ``throughput.json`` (utterances and audio seconds per second of training, peak GPU memory,
batches skipped for a non-finite loss).
"""

from __future__ import annotations

import json
import math
import os
import time

import torch
from lightning.pytorch import Callback

from asr_transfer.fileio import atomic_open


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value.item() if hasattr(value, "item") else value)
    return value if math.isfinite(value) else None


def metrics_path(run_dir: str | os.PathLike) -> str:
    """The dev-metrics curve of a run: written by :class:`MetricsCSV`, read by the reports."""
    return os.path.join(os.fspath(run_dir), "curves", "metrics.csv")


class MetricsCSV(Callback):
    def __init__(self, run_dir: str | os.PathLike):
        self.path = metrics_path(run_dir)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.started = time.time()
        self.last_train_loss = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if isinstance(outputs, dict) and "loss" in outputs:
            self.last_train_loss = _number(outputs["loss"])

    def on_validation_end(self, trainer, pl_module) -> None:
        # on_validation_end runs after the model's own epoch-end hook has logged val_wer.
        if trainer.sanity_checking or trainer.global_rank != 0:
            return
        metrics = trainer.callback_metrics
        new_file = not os.path.exists(self.path)
        with open(self.path, "a", encoding="utf-8") as handle:
            if new_file:
                handle.write("step,seconds,val_wer,val_loss,train_loss\n")
            values = [
                trainer.global_step,
                round(time.time() - self.started, 2),
                _number(metrics.get("val_wer")),
                _number(metrics.get("val_loss")),
                self.last_train_loss,
            ]
            handle.write(",".join("" if value is None else f"{value:.6g}" for value in values) + "\n")


class Throughput(Callback):
    """Counts utterances and audio seconds trained per second of wall time (validation excluded)."""

    def __init__(self, path: str, sample_rate: int = 16000):
        self.path = path
        self.sample_rate = sample_rate
        self.utterances = 0
        self.audio_seconds = 0.0
        self.train_seconds = 0.0
        self.steps = 0
        self._batch_started = None

    def on_train_start(self, trainer, pl_module) -> None:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._batch_started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if self._batch_started is not None:
            self.train_seconds += time.perf_counter() - self._batch_started
        self.steps = trainer.global_step
        signal_length = batch[1]
        self.utterances += int(signal_length.numel())
        self.audio_seconds += float(signal_length.sum()) / self.sample_rate

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_rank != 0:
            return
        result = {
            "precision": str(trainer.precision),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "steps": self.steps,
            "utterances": self.utterances,
            "utterances_per_second": round(self.utterances / self.train_seconds, 2) if self.train_seconds else None,
            "audio_seconds_per_second": round(self.audio_seconds / self.train_seconds, 2)
            if self.train_seconds
            else None,
            "peak_gpu_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20)
            if torch.cuda.is_available()
            else None,
            "skipped_nonfinite_batches": getattr(pl_module, "_skipped_nonfinite", 0),
        }
        with atomic_open(self.path) as handle:
            json.dump(result, handle, indent=2)
