"""Lightning callbacks of a fine-tuning run: dev WER and CER curves, throughput, skipped batches, progress.

Out, in the run folder: ``curves/metrics.csv`` (step, seconds, val_wer, val_loss, train_loss, val_cer at
every validation; in a folder because NeMo's exp_manager moves a resumed run's loose files to ``run_N/``),
``throughput.json`` (utterances and audio seconds per second of training, peak GPU memory, batches
skipped for a non-finite loss), the run's full log and ``model_summary.txt`` (:class:`RunFolderLog`).
On the terminal: one line per validation (step, dev WER, dev CER, best so far) and one progress bar for
the whole training run (:class:`StepProgressBar`).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time

import torch
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

from asr_transfer.fileio import atomic_open
from asr_transfer.layout import metrics_path
from asr_transfer.manifests.audio import TARGET_RATE
from asr_transfer.training.grafts import batch_audio_lengths, batch_transcripts, capture_outputs


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value.item() if hasattr(value, "item") else value)
    return value if math.isfinite(value) else None


def _format(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


class MetricsCSV(Callback):
    """Appends a row to ``curves/metrics.csv`` and prints one line at every validation, such as
    ``step 25/200: dev WER 0.881, dev CER 0.412; best dev WER 0.881 (step 25)``. "Best" is of the metric
    the checkpoints follow (``val_wer``, or ``val_cer`` for a language judged by CER), rows of a resumed
    run included."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = metrics_path(run_dir)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.started = time.time()
        self.last_train_loss = None
        self.best: tuple[float, int] | None = None  # (value, step) of the monitored metric
        self.last_validated_step = 0

    def _monitor(self, trainer) -> str:
        monitor = getattr(trainer.checkpoint_callback, "monitor", None)
        return monitor if monitor in ("val_wer", "val_cer") else "val_wer"

    def _past_best(self, monitor: str) -> tuple[float, int] | None:
        """The best value of a resumed run's earlier rows, read once."""
        best = None
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8", newline="") as handle:
                for row in csv.DictReader(handle):
                    try:
                        value, step = float(row[monitor]), int(row["step"])
                    except (KeyError, TypeError, ValueError):
                        continue
                    if best is None or value < best[0]:
                        best = (value, step)
        return best

    def _print_line(self, trainer, wer: float | None, cer: float | None) -> None:
        from tqdm import tqdm

        monitor = self._monitor(trainer)
        value = wer if monitor == "val_wer" else cer
        self.last_validated_step = trainer.global_step
        if value is not None and (self.best is None or value < self.best[0]):
            self.best = (value, trainer.global_step)
        total = f"/{trainer.max_steps}" if trainer.max_steps and trainer.max_steps > 0 else ""
        line = f"step {trainer.global_step}{total}: dev WER {_format(wer)}, dev CER {_format(cer)}"
        if self.best is not None:
            line += f"; best dev {monitor[4:].upper()} {_format(self.best[0])} (step {self.best[1]})"
        # tqdm.write: printed above the training bar instead of through it.
        tqdm.write(line)

    def on_train_end(self, trainer, pl_module) -> None:
        from lightning.pytorch.callbacks import EarlyStopping
        from tqdm import tqdm

        stopper = next((callback for callback in trainer.callbacks if isinstance(callback, EarlyStopping)), None)
        if stopper is None or trainer.global_rank != 0:
            return
        # trainer.global_step is not the last step here (Lightning has torn the loop down): the last
        # validation's step is where the run stopped.
        step = self.last_validated_step
        if trainer.max_steps and 0 < step < trainer.max_steps:
            what = stopper.monitor[4:].upper() if stopper.monitor.startswith("val_") else stopper.monitor
            tqdm.write(
                f"stopped at step {step}/{trainer.max_steps}: no new best dev {what} in the last "
                f"{stopper.patience} validation(s) (early stopping)"
            )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if isinstance(outputs, dict) and "loss" in outputs:
            self.last_train_loss = _number(outputs["loss"])

    def on_validation_end(self, trainer, pl_module) -> None:
        # on_validation_end runs after the model's own epoch-end hook has logged val_wer.
        if trainer.sanity_checking or trainer.global_rank != 0:
            return
        metrics = trainer.callback_metrics
        if self.best is None:
            self.best = self._past_best(self._monitor(trainer))
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
        self._print_line(trainer, values[2], values[5])


class RunFolderLog(Callback):
    """The run folder's log file (:func:`asr_transfer.logs.to_run_folder`) and ``model_summary.txt``
    (Lightning's layer table, off the terminal unless verbose), both in the folder exp_manager gave the
    trainer (``trainer.default_root_dir``)."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        from asr_transfer.logs import to_run_folder

        to_run_folder(trainer.default_root_dir, trainer.global_rank, trainer.local_rank)

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.global_rank != 0:
            return
        from lightning.pytorch.utilities.model_summary import ModelSummary

        with atomic_open(os.path.join(trainer.default_root_dir, "model_summary.txt")) as handle:
            handle.write(f"{ModelSummary(pl_module, max_depth=1)}\n")


class StepProgressBar(TQDMProgressBar):
    """One progress bar for a whole ``max_steps`` run, counted in optimizer steps, instead of one per epoch
    (a small corpus makes dozens of epochs); no validation or sanity-check bars, since every validation
    prints its one line (:class:`MetricsCSV`). Without ``max_steps``, Lightning's per-epoch bar."""

    def init_sanity_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)

    def init_validation_tqdm(self) -> Tqdm:
        if self.trainer.state.fn != "fit":
            return super().init_validation_tqdm()  # trainer.validate(): that bar is the only one
        return Tqdm(disable=True)

    def _by_steps(self, trainer) -> bool:
        return bool(trainer.max_steps and trainer.max_steps > 0)

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the run folder's version, already in the Stage line
        return metrics

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        if self._by_steps(trainer):
            bar = self.train_progress_bar
            bar.reset(trainer.max_steps)
            bar.set_description("training steps")
            self._show(trainer, pl_module)

    def _show(self, trainer, pl_module) -> None:
        bar = self.train_progress_bar
        if not bar.disable:
            bar.n = trainer.global_step  # a resumed run starts where it stopped
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            bar.refresh()

    def on_train_epoch_start(self, trainer, *args) -> None:
        if not self._by_steps(trainer):
            super().on_train_epoch_start(trainer, *args)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self._by_steps(trainer):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        elif self._should_update(trainer.global_step, trainer.max_steps):
            self._show(trainer, pl_module)


class DevCER(Callback):
    """Logs ``val_cer`` beside NeMo's ``val_wer``: the character error rate of greedy CTC decoding on dev.

    NeMo's CTC models compute WER only. CER is what a Han-script target is judged on, and it moves
    before WER does early in training. The encoder and decoder outputs of each validation batch are
    caught with forward hooks (``grafts.capture_outputs``), so the model is not run twice.
    """

    def __init__(self):
        self._hooks: list = []
        self._outputs: dict = {}
        self._references: list[str] = []
        self._hypotheses: list[str] = []

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._references, self._hypotheses = [], []
        self._hooks = capture_outputs(pl_module, self._outputs)

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
        transcripts, transcript_lengths = (field.cpu() for field in batch_transcripts(batch))
        for hypothesis, ids, length in zip(hypotheses, transcripts, transcript_lengths, strict=True):
            reference = decoding.decode_ids_to_str(ids[: int(length)].tolist())
            if reference:
                self._references.append(reference)
                self._hypotheses.append(hypothesis.text)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        import torch

        for hook in self._hooks:
            hook.remove()
        self._hooks, self._outputs = [], {}
        # Edit operations and reference characters are summed over the ranks before dividing: the CER of
        # the whole dev set (a mean of the ranks' CERs is not), and every rank joins the reduction, even
        # one with no reference of its own, so none waits in it alone.
        counts = torch.tensor(character_errors(self._references, self._hypotheses), dtype=torch.float64)
        errors, characters = trainer.strategy.reduce(counts.to(pl_module.device), reduce_op="sum").tolist()
        if characters:
            pl_module.log("val_cer", errors / characters, sync_dist=True)  # equal on every rank already


def character_errors(references: list[str], hypotheses: list[str]) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference characters) of a CER (jiwer's alignment);
    their ratio is ``jiwer.cer(references, hypotheses)``. (0, 0) for no references."""
    import jiwer

    if not references:
        return 0, 0
    output = jiwer.process_characters(references, hypotheses)
    return (
        output.substitutions + output.deletions + output.insertions,
        output.substitutions + output.deletions + output.hits,
    )


class Throughput(Callback):
    """Counts utterances and audio seconds trained per second of wall time (validation excluded)."""

    def __init__(self, path: str, sample_rate: int = TARGET_RATE):
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
        signal_length = batch_audio_lengths(batch)
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
