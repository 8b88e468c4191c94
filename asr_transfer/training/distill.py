"""Plain knowledge distillation for ``finetune``: CTC plus a temperature-scaled KL to a teacher.

In: the model being fine-tuned and a ``distill`` config (``teacher``: a ``.nemo`` with the same
vocabulary and frame rate; ``temperature``; ``weight``). Out: the model's CTC loss becomes
``(1 - weight) * CTC + weight * T^2 * KL(teacher || student)`` on training batches, the KL averaged over
valid frames and logged as ``train_kd``. The teacher sees the batch's features before SpecAugment;
it is held outside the module tree, so checkpoints and the exported ``.nemo`` never contain it.
"""

from __future__ import annotations

from omegaconf import DictConfig

from asr_transfer.errors import UserError
from asr_transfer.training.grafts import attach_kd


def check_compatible(model, teacher) -> None:
    if list(model.decoder.vocabulary) != list(teacher.decoder.vocabulary):
        raise UserError(
            "distill.teacher has another vocabulary than the model being trained; distil into a model with the "
            "teacher's vocabulary (vocab.kind=keep from a student of that teacher)"
        )


def attach_distillation(model, distill_cfg: DictConfig) -> None:
    """Load ``distill.teacher`` (frozen, on the CPU until the first batch moves it), check its vocabulary,
    and graft the KD loss onto ``model`` (``training.grafts.attach_kd``)."""
    from asr_transfer.inference.model import load_model

    teacher = load_model(distill_cfg.teacher, "cpu", named="distill.teacher=")
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    check_compatible(model, teacher)
    attach_kd(model, teacher, float(distill_cfg.temperature), float(distill_cfg.weight))
