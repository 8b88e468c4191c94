"""Length-masked losses between a student and its teacher.

In: the two models' final encoder outputs (B x D x T, NeMo's layout) and CTC log-probabilities
(B x T x V) for the same features, and the valid frame count of each utterance. Out: scalar losses.
Frames past an utterance's length never count, so a batch padded to any length gives the same loss
(Hannan et al.'s released code does not mask; we do). Step 1 (``representation_loss``) adds a CLIP-style
contrastive term between time-pooled encoder outputs to a frame-level match of the log-probabilities;
knowledge distillation uses ``masked_kl`` on temperature-scaled posteriors (``asr_transfer.training.losses``,
where fine-tuning's distillation finds it too).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from asr_transfer.training.losses import frame_mask, masked_kl
from asr_transfer.training.losses import mean_over_valid_frames as _mean_over_valid_frames

__all__ = ["LOSSES", "clip_loss", "frame_mask", "masked_kl", "masked_l1", "masked_mean_over_time", "masked_mse",
           "representation_loss"]  # fmt: skip
LOSSES = ("clip+mse", "clip", "mse", "l1", "kl")  # "clip" alone: does the contrastive term learn unaided?
CLIP_TEMPERATURE = 0.07  # CLIP's and the authors' value


def masked_mean_over_time(encoded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """B x D x T -> B x D: each utterance's mean over its valid frames."""
    mask = frame_mask(lengths, encoded.shape[-1]).to(encoded.dtype)
    return (encoded * mask[:, None, :]).sum(-1) / mask.sum(-1, keepdim=True).clamp(min=1)


def clip_loss(student_encoded, teacher_encoded, lengths, temperature: float = CLIP_TEMPERATURE) -> torch.Tensor:
    """Symmetric cross-entropy over the batch: each utterance's pooled student vector must pick out the
    teacher's vector of the same utterance among the batch's."""
    student = F.normalize(masked_mean_over_time(student_encoded.float(), lengths), dim=-1)
    teacher = F.normalize(masked_mean_over_time(teacher_encoded.float(), lengths), dim=-1)
    logits = student @ teacher.T / temperature
    targets = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def masked_mse(student_log_probs, teacher_log_probs, lengths) -> torch.Tensor:
    per_frame = (student_log_probs.float() - teacher_log_probs.float()).pow(2).mean(-1)
    return _mean_over_valid_frames(per_frame, lengths)


def masked_l1(student_log_probs, teacher_log_probs, lengths) -> torch.Tensor:
    per_frame = (student_log_probs.float() - teacher_log_probs.float()).abs().mean(-1)
    return _mean_over_valid_frames(per_frame, lengths)


def representation_loss(kind: str, student: dict, teacher: dict, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
    """Step 1's loss and its terms. ``student`` and ``teacher`` hold ``encoded`` and ``log_probs``."""
    if kind not in LOSSES:
        raise ValueError(f"unknown representation loss {kind!r}; one of {LOSSES}")
    terms = {}
    if kind in ("clip+mse", "clip"):
        terms["clip"] = clip_loss(student["encoded"], teacher["encoded"], lengths)
    if kind in ("clip+mse", "mse"):
        terms["mse"] = masked_mse(student["log_probs"], teacher["log_probs"], lengths)
    elif kind == "l1":
        terms["l1"] = masked_l1(student["log_probs"], teacher["log_probs"], lengths)
    elif kind == "kl":
        terms["kl"] = masked_kl(student["log_probs"], teacher["log_probs"], lengths)
    terms["loss"] = sum(terms.values())
    return terms
