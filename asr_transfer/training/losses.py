"""Length-masked per-frame losses between two models' CTC outputs, shared by knowledge distillation
(``training.distill``) and the shrink experiment (``shrink.losses``).

In: log-probabilities or any per-frame values, B x T x ..., and each utterance's valid frame count (B).
Out: scalar losses averaged over valid frames only, so a batch padded to any length gives the same loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def frame_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """B x T booleans: True on an utterance's valid frames."""
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


def mean_over_valid_frames(per_frame: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """B x T -> scalar: the mean over every utterance's valid frames."""
    mask = frame_mask(lengths, per_frame.shape[1]).to(per_frame.dtype)
    return (per_frame * mask).sum() / mask.sum().clamp(min=1)


def masked_kl(student_log_probs, teacher_log_probs, lengths, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher || student) per frame on posteriors softened by ``temperature``, times T^2 (Hinton et
    al.) so that its gradient keeps its scale as T changes; averaged over valid frames. Inputs B x T x V."""
    student = F.log_softmax(student_log_probs.float() / temperature, dim=-1)
    teacher = F.log_softmax(teacher_log_probs.float() / temperature, dim=-1)
    per_frame = (teacher.exp() * (teacher - student)).sum(-1)
    return mean_over_valid_frames(per_frame, lengths) * temperature**2
