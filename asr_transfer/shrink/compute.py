"""The compute of one training step of each kind, so that arms can be compared at equal compute.

In: the teacher, a student, one real batch of each step's own size (step 1: waveforms of the audio
manifest; CTC: waveforms and transcripts of the training manifest). Out: floating-point operations
counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products, convolutions and attention,
forward and backward; 2 per multiply-add; element-wise work is not counted) of
- a step-1 step: the frozen teacher's forward pass, the student's forward pass, the representation loss
  and its backward pass (:func:`asr_transfer.shrink.encrl.batch_loss`);
- a CTC step of the student: forward in training mode (SpecAugment included), CTC loss, backward;
- the teacher's forward pass on a CTC batch, what KD adds to a CTC step.
The optimizer's update is left out of both (a few operations per parameter, not counted either way).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from asr_transfer.inference.batches import AudioManifest, pad_batch
from asr_transfer.manifests.audio import model_sample_rate


def counted(work) -> int:
    """FLOPs of ``work()`` (FlopCounterMode's count)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        work()
    return int(counter.get_total_flops())


def first_batch(dataset, batch_size: int, seed: int) -> list:
    """The items of the first batch a run with ``seed`` draws (``encrl.StepBatches``'s rule)."""
    rng = np.random.default_rng([seed, 0])
    return [dataset[index] for index in rng.choice(len(dataset), min(batch_size, len(dataset)), replace=False)]


def step1_step_flops(teacher, student, audio_manifest: str, batch_size: int, loss: str, seed: int = 0) -> int:
    """FLOPs of one step-1 step on the batch step 1 draws first."""
    from asr_transfer.shrink.encrl import batch_loss

    signal, lengths = pad_batch(
        first_batch(AudioManifest(audio_manifest, model_sample_rate(teacher)), batch_size, seed)
    )
    teacher.eval()
    student.train()

    def step() -> None:
        batch_loss(loss, teacher, student, signal, lengths)["loss"].backward()

    flops = counted(step)
    student.zero_grad(set_to_none=True)
    return flops


def ctc_batch(model, manifest: str, batch_size: int, seed: int = 0):
    from asr_transfer.shrink.check import TranscribedAudio, collate_transcribed

    return collate_transcribed(first_batch(TranscribedAudio(manifest, model_sample_rate(model)), batch_size, seed))


def ctc_step_flops(student, manifest: str, batch_size: int, seed: int = 0) -> int:
    """FLOPs of one CTC training step of ``student`` on a batch of ``batch_size`` training utterances."""
    from asr_transfer.shrink.check import ctc_targets

    signal, lengths, texts = ctc_batch(student, manifest, batch_size, seed)
    targets, counts = ctc_targets(student, texts)
    student.train()

    def step() -> None:
        log_probs, encoded_lengths, _ = student(input_signal=signal, input_signal_length=lengths)
        student.loss(
            log_probs=log_probs, targets=targets, input_lengths=encoded_lengths, target_lengths=counts
        ).backward()

    flops = counted(step)
    student.zero_grad(set_to_none=True)
    return flops


def teacher_forward_flops(teacher, manifest: str, batch_size: int, seed: int = 0) -> int:
    """FLOPs of the teacher's forward pass on a CTC batch (what KD adds to each CTC step)."""
    signal, lengths, _ = ctc_batch(teacher, manifest, batch_size, seed)
    teacher.eval()

    def forward() -> None:
        with torch.no_grad():
            teacher(input_signal=signal, input_signal_length=lengths)

    return counted(forward)


def steps_for(flops: float, step_flops: int) -> int:
    """Steps of ``step_flops`` each that spend at least ``flops``: ceil(flops / step_flops)."""
    return math.ceil(flops / step_flops) if flops > 0 else 0
