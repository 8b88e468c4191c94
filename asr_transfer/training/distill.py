"""Plain knowledge distillation for ``finetune``: CTC plus a temperature-scaled KL to a teacher.

In: the model being fine-tuned and a ``distill`` config (``teacher``: a ``.nemo`` with the same
vocabulary and frame rate; ``temperature``; ``weight``). Out: the model's CTC loss becomes
``(1 - weight) * CTC + weight * T^2 * KL(teacher || student)`` on training batches, the KL averaged over
valid frames and logged as ``train_kd``. The teacher sees the batch's features before SpecAugment;
it is held outside the module tree, so checkpoints and the exported ``.nemo`` never contain it.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from asr_transfer.errors import UserError


def check_compatible(model, teacher) -> None:
    if list(model.decoder.vocabulary) != list(teacher.decoder.vocabulary):
        raise UserError(
            "distill.teacher has another vocabulary than the model being trained; distil into a model with the "
            "teacher's vocabulary (vocab.kind=keep from a student of that teacher)"
        )


def attach_distillation(model, distill_cfg: DictConfig) -> None:
    from asr_transfer.inference.model import load_model
    from asr_transfer.shrink.losses import masked_kl

    teacher = load_model(distill_cfg.teacher, "cpu", named="distill.teacher=")
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    check_compatible(model, teacher)
    temperature, weight = float(distill_cfg.temperature), float(distill_cfg.weight)
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
        kl = masked_kl(kwargs["log_probs"], targets.pop("log_probs"), targets.pop("lengths"), temperature)
        model.log("train_kd", kl.detach(), prog_bar=True)
        return (1 - weight) * ctc_loss + weight * kl

    model.preprocessor.register_forward_hook(teacher_outputs)
    model.loss.register_forward_hook(add_kl, with_kwargs=True)
