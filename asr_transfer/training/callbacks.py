"""Lightning callbacks of a fine-tuning run: dev WER and CER curves, throughput, and skipped batches.

Out, in the run folder: ``curves/metrics.csv`` (step, seconds, val_wer, val_loss, train_loss, val_cer at
every validation; in a folder because NeMo's exp_manager moves a resumed run's loose files to ``run_N/``)
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
from asr_transfer.layout import metrics_path


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value.item() if hasattr(value, "item") else value)
    return value if math.isfinite(value) else None


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
                # val_cer last: curves written before it existed still read by column name.
                handle.write("step,seconds,val_wer,val_loss,train_loss,val_cer\n")
            values = [
                trainer.global_step,
                round(time.time() - self.started, 2),
                _number(metrics.get("val_wer")),
                _number(metrics.get("val_loss")),
                self.last_train_loss,
                _number(metrics.get("val_cer")),
            ]
            handle.write(",".join("" if value is None else f"{value:.6g}" for value in values) + "\n")


class DevCER(Callback):
    """Logs ``val_cer`` beside NeMo's ``val_wer``: the character error rate of greedy CTC decoding on dev.

    NeMo's CTC models compute WER only. CER is what a Han-script target is judged on, and it moves
    before WER does early in training. The encoder and decoder outputs of each validation batch are
    caught with forward hooks, so the model is not run twice.
    """

    def __init__(self):
        self._hooks: list = []
        self._outputs: dict = {}
        self._references: list[str] = []
        self._hypotheses: list[str] = []

    def _keep(self, name: str):
        def hook(module, inputs, output):
            self._outputs[name] = output

        return hook

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._references, self._hypotheses = [], []
        self._hooks = [
            pl_module.encoder.register_forward_hook(self._keep("encoder")),
            pl_module.decoder.register_forward_hook(self._keep("log_probs")),
        ]

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        decoding = getattr(getattr(pl_module, "wer", None), "decoding", None)
        if (
            dataloader_idx != 0
            or "log_probs" not in self._outputs
            or not hasattr(decoding, "ctc_decoder_predictions_tensor")
        ):
            return  # a second dev set, or a model without CTC decoding: no CER rather than a crash
        _, encoded_lengths = self._outputs["encoder"]
        hypotheses = decoding.ctc_decoder_predictions_tensor(
            decoder_outputs=self._outputs.pop("log_probs"), decoder_lengths=encoded_lengths
        )
        transcripts, transcript_lengths = batch[2].cpu(), batch[3].cpu()
        for hypothesis, ids, length in zip(hypotheses, transcripts, transcript_lengths, strict=True):
            reference = decoding.decode_ids_to_str(ids[: int(length)].tolist())
            if reference:
                self._references.append(reference)
                self._hypotheses.append(hypothesis.text)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        import jiwer

        for hook in self._hooks:
            hook.remove()
        self._hooks, self._outputs = [], {}
        if self._references:
            pl_module.log("val_cer", float(jiwer.cer(self._references, self._hypotheses)), sync_dist=True)


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
