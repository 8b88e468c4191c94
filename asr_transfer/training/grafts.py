"""Every piece of behaviour grafted onto stock NeMo objects at run time, and the NeMo layouts it relies on.

The models stay NeMo's own classes (``EncDecCTCModel``, ``EncDecCTCModelBPE``), so an exported ``.nemo``
restores in stock NeMo; what this package adds to a run is attached to an instance here, by method
replacement and forward hooks, and nowhere else:

- ``guard_training_step``: the CTC loss in fp32, and a batch with a non-finite loss skipped;
- ``attach_kd``: knowledge distillation (the teacher's posteriors from the preprocessor's output, a KL
  term added to the CTC loss's output);
- ``capture_outputs``: the encoder's and decoder's outputs of each forward pass (dev CER without a
  second forward pass);
- ``batch_audio_lengths`` / ``batch_transcripts``: fields of a training or validation batch;
- ``rank_zero_decides_best_checkpoint``: under DDP, every rank takes the same path through NeMo's
  ``.nemo`` save after a validation (NeMo's own check raced, and the ranks deadlocked).

In: a NeMo CTC model (and a teacher, for KD). Out: the same instance, grafted; hook handles where the
caller removes them. The layouts assumed (all checked by tests/test_grafts.py against the installed NeMo,
so an upgrade that changes one fails there, not silently in training):

- a batch is the tuple ``(audio B x S float, audio_lengths B, tokens B x U int, token_lengths B)``
  (``BATCH_FIELDS``), from NeMo's ``AudioToCharDataset`` / ``AudioToBPEDataset`` and its Lhotse path;
- ``model.preprocessor`` returns ``(features B x F x T, feature_lengths B)``;
- ``model.encoder`` returns ``(encoded B x D x T', encoded_lengths B)``; ``model.decoder`` returns
  log-probabilities ``B x T' x V``;
- ``model.loss`` (``CTCLoss``) is called with keyword arguments including ``log_probs``;
- ``model.training_step(batch, batch_idx)`` returns the loss or a dict holding it as ``loss``;
- ``NeMoModelCheckpoint.on_save_checkpoint`` returns early, with no collective, while
  ``os.path.exists(best_model_path)`` is false on this rank (``EARLY_RETURN_CHECK``).
"""

from __future__ import annotations

import os
import types

import torch

from asr_transfer.training.losses import masked_kl

BATCH_FIELDS = ("audio", "audio_lengths", "tokens", "token_lengths")
# NeMo 3.0's rank-local test in NeMoModelCheckpoint.on_save_checkpoint that rank_zero_decides_best_checkpoint
# replaces; tests/test_grafts.py checks it is still there, so a NeMo that changes it is noticed.
EARLY_RETURN_CHECK = "if not os.path.exists(maybe_injected_best_model_path):"


def batch_audio_lengths(batch) -> torch.Tensor:
    """B: each utterance's length in samples."""
    return batch[BATCH_FIELDS.index("audio_lengths")]


def batch_transcripts(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(B x U token ids, padded; B lengths): the reference transcripts."""
    return batch[BATCH_FIELDS.index("tokens")], batch[BATCH_FIELDS.index("token_lengths")]


def guard_training_step(model) -> None:
    """CTC loss in fp32, and a batch whose loss is not finite is skipped (counted in
    ``model._skipped_nonfinite``, logged as ``skipped_nonfinite_batches``, never trained on)."""

    def loss_in_fp32(module, args, kwargs):
        if "log_probs" in kwargs:
            kwargs["log_probs"] = kwargs["log_probs"].float()
        return args, kwargs

    model.loss.register_forward_pre_hook(loss_in_fp32, with_kwargs=True)
    model._skipped_nonfinite = 0
    original_step = model.training_step

    def training_step(self, batch, batch_idx):
        output = original_step(batch, batch_idx)
        loss = output["loss"] if isinstance(output, dict) else output
        if loss is not None and not torch.isfinite(loss).all():
            self._skipped_nonfinite += 1
            self.log("skipped_nonfinite_batches", float(self._skipped_nonfinite), prog_bar=True)
            return None  # Lightning skips the backward pass and the optimizer step
        return output

    model.training_step = types.MethodType(training_step, model)


def attach_kd(model, teacher, temperature: float, weight: float) -> None:
    """On training batches, the CTC loss becomes ``(1 - weight) * CTC + weight * T^2 * KL(teacher ||
    student)`` (``training.losses.masked_kl``, over valid frames), the KL logged as ``train_kd``. The
    teacher (frozen, held outside the module tree so checkpoints never contain it) sees the
    preprocessor's features, before SpecAugment; it follows the features to their device."""
    targets: dict = {}

    def teacher_outputs(module, args, output):
        if not model.training:
            return
        features, lengths = output
        if next(teacher.parameters()).device != features.device:
            teacher.to(features.device)
        with torch.no_grad():
            encoded, encoded_lengths = teacher.encoder(audio_signal=features, length=lengths)
            targets["log_probs"] = teacher.decoder(encoder_output=encoded)
            targets["lengths"] = encoded_lengths

    def add_kl(module, args, kwargs, ctc_loss):
        if not model.training or "log_probs" not in targets:
            return ctc_loss
        divergence = masked_kl(kwargs["log_probs"], targets.pop("log_probs"), targets.pop("lengths"), temperature)
        model.log("train_kd", divergence.detach(), prog_bar=True)
        return (1 - weight) * ctc_loss + weight * divergence

    model.preprocessor.register_forward_hook(teacher_outputs)
    model.loss.register_forward_hook(add_kl, with_kwargs=True)


def capture_outputs(model, store: dict) -> list:
    """Keep each forward pass's ``store["encoder"] = (encoded, encoded_lengths)`` and
    ``store["log_probs"]``; returns the hook handles (``handle.remove()`` detaches them)."""

    def keep(name: str):
        def hook(module, inputs, output):
            store[name] = output

        return hook

    return [
        model.encoder.register_forward_hook(keep("encoder")),
        model.decoder.register_forward_hook(keep("log_probs")),
    ]


def rank_zero_decides_best_checkpoint(trainer) -> None:
    """Under DDP, rank 0's view decides whether NeMo's checkpoint callback saves the best ``.nemo`` now.

    With ``always_save_nemo`` and ``save_best_model``, ``NeMoModelCheckpoint.on_save_checkpoint`` runs on
    every rank while Lightning builds a checkpoint, and returns early while the best checkpoint file does
    not exist yet, as each rank sees it. Rank 0 writes that file right after; a rank that looks a moment
    later finds it, enters a barrier and a broadcast that rank 0 skipped, and the ranks wait in different
    collectives for ever (seen on 2 CPU ranks: a hang at the first validation, about 1 run in 3 under load;
    the race NVIDIA-NeMo/Speech pull request 14380 describes). Grafted: rank 0's answer is broadcast, and
    a rank goes on into NeMo's save only when rank 0 does. Nothing changes on one device."""
    from nemo.utils.callbacks.nemo_model_checkpoint import NeMoModelCheckpoint

    if trainer.world_size < 2:
        return
    for callback in trainer.callbacks:
        if isinstance(callback, NeMoModelCheckpoint) and callback.always_save_nemo and callback.save_best_model:
            callback.on_save_checkpoint = rank_zero_existence_check(callback, callback.on_save_checkpoint)


def rank_zero_existence_check(callback, on_save_checkpoint):
    def guarded(trainer, pl_module, checkpoint):
        best = callback.best_model_path
        if not trainer.strategy.broadcast(bool(best) and os.path.exists(best)):
            return None  # what NeMo's own early return gives, now on every rank at once
        return on_save_checkpoint(trainer, pl_module, checkpoint)

    return guarded
