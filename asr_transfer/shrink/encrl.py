"""Step 1, encoder representation learning: a student learns a frozen teacher's representations.

In: the teacher ``.nemo``, a student (``students.derive``), an audio manifest (``audio_filepath``; text
is not read), a dev audio manifest, the loss (``losses.LOSSES``), steps and a folder. Both models see
the same features from one call of the teacher's preprocessor (in eval mode: no dither), so neither
sees an input the other does not. Out, in the folder: ``checkpoint.pt`` (rewritten atomically every
``save_every`` steps; a rerun resumes from it), ``log.csv`` (step, seconds, lr, loss terms; seconds
count the teacher's forward passes), ``dev_loss.csv`` (step, dev loss) and the trained student as
``.nemo``. The student kept is the one with the lowest dev loss of all checks (step 0's included); with
``patience`` set the run ends after that many checks without a new best (the learning-rate schedule
stays that of ``steps``), and the summary records where it stopped.
Batches are drawn from the step number and the seed, so a resumed run sees the batches an unbroken
run would have seen.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from asr_transfer.fileio import atomic_open, atomic_path
from asr_transfer.inference.batches import AudioManifest, pad_batch
from asr_transfer.manifests.audio import model_sample_rate
from asr_transfer.shrink.losses import representation_loss


class StepBatches(Sampler):
    """The batch of step s is a function of (seed, s) alone: resuming at any step replays the same data."""

    def __init__(self, size: int, batch_size: int, seed: int, first_step: int, last_step: int):
        self.size, self.batch_size, self.seed = size, min(batch_size, size), seed
        self.first_step, self.last_step = first_step, last_step

    def __iter__(self):
        for step in range(self.first_step, self.last_step):
            rng = np.random.default_rng([self.seed, step])
            yield rng.choice(self.size, self.batch_size, replace=False).tolist()

    def __len__(self) -> int:
        return max(self.last_step - self.first_step, 0)


def outputs(model, features: torch.Tensor, lengths: torch.Tensor) -> dict:
    encoded, encoded_lengths = model.encoder(audio_signal=features, length=lengths)
    return {"encoded": encoded, "log_probs": model.decoder(encoder_output=encoded), "lengths": encoded_lengths}


def features_of(teacher, signal: torch.Tensor, lengths: torch.Tensor):
    return teacher.preprocessor(input_signal=signal, length=lengths)


def batch_loss(kind: str, teacher, student, signal, lengths) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        features, feature_lengths = features_of(teacher, signal, lengths)
        target = outputs(teacher, features, feature_lengths)
    prediction = outputs(student, features, feature_lengths)
    return representation_loss(kind, prediction, target, target["lengths"])


def dev_loss(kind: str, teacher, student, loader: DataLoader, device) -> float:
    was_training = student.training
    student.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for signal, lengths in loader:
            terms = batch_loss(kind, teacher, student, signal.to(device), lengths.to(device))
            total += float(terms["loss"]) * len(lengths)
            count += len(lengths)
    student.train(was_training)
    return total / max(count, 1)


def warmup_cosine(total_steps: int, warmup_fraction: float, floor: float):
    warmup = max(int(total_steps * warmup_fraction), 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total_steps - warmup, 1)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def write_rows(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    with atomic_open(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


@dataclass
class Step1Config:
    """Step 1's settings (``asr-transfer shrink --set step1.KEY=VALUE``); the one place their defaults live."""

    loss: str = "clip+mse"  # see asr_transfer.shrink.losses.LOSSES
    steps: int = 500
    batch_size: int = 16
    lr: float = 1e-3  # peak learning rate of AdamW
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    weight_decay: float = 1e-3
    clip_norm: float = 1.0  # gradient norm clipping
    warmup_fraction: float = 0.1  # linear warm-up over this share of the steps, then cosine decay
    lr_floor: float = 0.01  # the cosine ends at this fraction of the peak
    validations: int = 4  # dev-loss checks (and checkpoints) over the schedule of ``steps``
    patience: int | None = None  # stop after this many dev-loss checks without a new best; None: all steps
    num_workers: int = 0


def checks_since_best(dev: list[dict]) -> int:
    """How many dev-loss checks came after the best one (the lowest; the earliest of equals)."""
    best = min(range(len(dev)), key=lambda index: (dev[index]["dev_loss"], index))
    return len(dev) - 1 - best


def learn_representations(
    teacher,
    student,
    audio_manifest: str,
    dev_manifest: str,
    out_dir: Path,
    step1: Step1Config | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Train ``student`` (in place) to match the frozen ``teacher``; on return it holds the weights of its
    lowest dev loss. Returns the step's summary: ``steps`` (taken), ``schedule_steps``, ``stopped_at``
    (the step early stopping ended the run at, None when it ran the schedule out), ``best_step``,
    ``dev_loss_before`` (step 0), ``dev_loss_after`` (the kept student's), ``dev_loss_last``, ``seconds``."""
    from tqdm import tqdm

    device = next(teacher.parameters()).device
    teacher.eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    student.to(device).train()
    trainable = [p for module in (student.encoder, student.decoder) for p in module.parameters()]
    step1 = step1 or Step1Config()
    loss, steps, batch_size = step1.loss, int(step1.steps), int(step1.batch_size)
    patience = None if step1.patience is None else int(step1.patience)
    if patience is not None and patience < 1:
        raise ValueError(f"step1.patience={patience} is not a number of dev-loss checks; give 1 or more, or null")
    save_every = max(steps // max(int(step1.validations), 1), 1)
    optimizer = torch.optim.AdamW(
        trainable, lr=float(step1.lr), betas=tuple(step1.betas), weight_decay=float(step1.weight_decay)
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(steps, float(step1.warmup_fraction), float(step1.lr_floor))
    )
    sample_rate = model_sample_rate(teacher)
    audio = AudioManifest(audio_manifest, sample_rate)
    dev = DataLoader(AudioManifest(dev_manifest, sample_rate), batch_size=batch_size, collate_fn=pad_batch)

    def weights() -> dict:
        return {key: value.detach().clone() for key, value in student.state_dict().items()}

    checkpoint_path = out_dir / "checkpoint.pt"
    state = {"step": 0, "seconds": 0.0, "log": [], "dev": [], "stopped_at": None}
    best = None  # the weights of the lowest dev loss so far
    if checkpoint_path.is_file():
        saved = torch.load(checkpoint_path, map_location=device, weights_only=False)
        student.load_state_dict(saved["student"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = {"stopped_at": None} | saved["state"]
        best = saved.get("best")
    if not state["dev"]:
        state["dev"].append({"step": 0, "dev_loss": dev_loss(loss, teacher, student, dev, device)})
    if best is None:
        best = weights()

    def save() -> None:
        with atomic_path(checkpoint_path) as tmp:
            torch.save(
                {
                    "student": student.state_dict(),
                    "best": best,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "state": state,
                },
                tmp,
            )
        write_rows(out_dir / "log.csv", state["log"])
        write_rows(out_dir / "dev_loss.csv", state["dev"])

    last_step = state["step"] if state["stopped_at"] is not None else steps
    batches = DataLoader(
        audio,
        batch_sampler=StepBatches(len(audio), batch_size, seed, state["step"], last_step),
        collate_fn=pad_batch,
        num_workers=int(step1.num_workers),
    )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    bar = tqdm(total=steps, initial=state["step"], desc="step 1 (representations)", disable=not progress)
    started = time.time() - state["seconds"]
    for signal, lengths in batches:
        with autocast:
            terms = batch_loss(loss, teacher, student, signal.to(device), lengths.to(device))
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(trainable, float(step1.clip_norm))
        optimizer.step()
        scheduler.step()
        state["step"] += 1
        state["seconds"] = time.time() - started
        row = {"step": state["step"], "seconds": round(state["seconds"], 3), "lr": scheduler.get_last_lr()[0]}
        state["log"].append(row | {name: round(float(value.detach()), 6) for name, value in terms.items()})
        bar.update(1)
        bar.set_postfix(loss=f"{float(terms['loss'].detach()):.4f}")
        if state["step"] % save_every == 0 or state["step"] == steps:
            state["dev"].append({"step": state["step"], "dev_loss": dev_loss(loss, teacher, student, dev, device)})
            waited = checks_since_best(state["dev"])
            if waited == 0:
                best = weights()
            elif patience is not None and waited >= patience and state["step"] < steps:
                state["stopped_at"] = state["step"]
            save()
            if state["stopped_at"] is not None:
                break
    bar.close()
    student.load_state_dict(best)
    student.eval()
    best_check = state["dev"][len(state["dev"]) - 1 - checks_since_best(state["dev"])]
    return {
        "loss": loss,
        "steps": state["step"],
        "schedule_steps": steps,
        "patience": patience,
        "stopped_at": state["stopped_at"],
        "best_step": best_check["step"],
        "seconds": round(state["seconds"], 2),
        "dev_loss_before": state["dev"][0]["dev_loss"],
        "dev_loss_after": best_check["dev_loss"],
        "dev_loss_last": state["dev"][-1]["dev_loss"],
    }
