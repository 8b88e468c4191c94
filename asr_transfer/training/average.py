"""Checkpoint averaging (icefall's ``--avg``, NeMo's ``scripts/checkpoint_averaging``): one model whose
weights are the mean of several checkpoints of a fine-tuning run.

In: a run folder (``exp_dir/name/version``; its ``checkpoints/*.ckpt``, Lightning checkpoints written by
NeMo's checkpoint callback), N, and which N: the ``best`` by the score each checkpoint recorded for the
run's monitor (the language's primary metric, ``val_wer`` or ``val_cer``; see
:func:`asr_transfer.training.config.resolve_monitor`), or the ``last`` by training step. Out: the run's
best ``.nemo`` restored with the averaged weights (its config and tokenizer are the run's), ready for
:func:`asr_transfer.inference.export.save_portable`.

Floating-point tensors (weights, BatchNorm running statistics) are averaged in float64 and cast back;
integer tensors (BatchNorm's ``num_batches_tracked``) are the newest checkpoint's, as NeMo's script does.
The callback keeps only ``save_top_k`` checkpoints (plus ``-last``), so averaging N needs
``exp_manager.checkpoint_callback_params.save_top_k >= N`` when training (``-1`` keeps every one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from asr_transfer.errors import InputError, UserError
from asr_transfer.layout import best_nemo, checkpoints_dir

SELECTIONS = ("best", "last")
TOP_K_KEY = "exp_manager.checkpoint_callback_params.save_top_k"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    monitor: str | None
    score: float | None  # the monitored metric when this checkpoint was saved (None for a bare -last)
    mode: str  # "min" or "max": which scores are better


def _load(path: Path) -> dict:
    import torch

    # Lightning checkpoints hold optimizer state and Python objects (the callbacks' state), so they need
    # weights_only=False; these are the run's own files, not downloads. mmap: only the tensors read are
    # paged in, so describing a checkpoint does not read its optimizer state.
    return torch.load(str(path), map_location="cpu", weights_only=False, mmap=True)


def describe(path: Path) -> Checkpoint:
    """The step and monitored score a checkpoint recorded (its checkpoint callback's own state)."""
    state = _load(path)
    monitor, score, mode = None, None, "min"
    for key, callback in (state.get("callbacks") or {}).items():
        if "ModelCheckpoint" in str(key) and isinstance(callback, dict):
            monitor = callback.get("monitor")
            current = callback.get("current_score")
            score = float(current) if current is not None else None
            mode = "max" if "'mode': 'max'" in str(key) else "min"
    # the -last checkpoint records the score of the last validation before it, not its own
    if path.stem.endswith("-last"):
        score = None
    return Checkpoint(path, int(state.get("global_step", 0)), monitor, score, mode)


def run_checkpoints(run: str | os.PathLike) -> list[Checkpoint]:
    """Every checkpoint of a run, one per training step (a ``-last`` file that repeats a top-k step is
    dropped), oldest first."""
    folder = checkpoints_dir(run)
    if not folder.is_dir():
        raise InputError(f"{run} holds no checkpoints/ folder; give a fine-tuning run folder (exp_dir/name/version)")
    by_step: dict[int, Checkpoint] = {}
    for path in sorted(folder.glob("*.ckpt")):
        checkpoint = describe(path)
        kept = by_step.get(checkpoint.step)
        if kept is None or (kept.score is None and checkpoint.score is not None):
            by_step[checkpoint.step] = checkpoint
    return [by_step[step] for step in sorted(by_step)]


def select_checkpoints(run: str | os.PathLike, count: int, selection: str = "best") -> list[Checkpoint]:
    """The ``count`` checkpoints to average: the best by the run's monitored score, or the last by step.

    Raises :class:`UserError` when the run kept fewer than ``count`` (naming the key to set)."""
    if count < 2:
        raise UserError(f"--average {count} averages nothing; give 2 or more checkpoints to average")
    if selection not in SELECTIONS:
        raise UserError(f"--average-from {selection} is not one of {', '.join(SELECTIONS)}; pick one")
    checkpoints = run_checkpoints(run)
    if selection == "best":
        pool = [checkpoint for checkpoint in checkpoints if checkpoint.score is not None]
        what = f"scored by {pool[0].monitor}" if pool else "with a validation score"
    else:
        pool = checkpoints
        what = "kept"
    if len(pool) < count:
        raise UserError(
            f"{run} holds {len(pool)} checkpoint(s) {what}, and --average {count} needs {count}; "
            f"train with {TOP_K_KEY}={count} or more (-1 keeps every checkpoint), or average fewer"
        )
    if selection == "last":
        return pool[-count:]
    reverse = pool[0].mode == "max"
    # ties (an untrained model scores WER 1.0 at every validation) go to the later step
    ranked = sorted(pool, key=lambda c: (c.score if not reverse else -c.score, -c.step))
    return sorted(ranked[:count], key=lambda c: c.step)


def average_state_dicts(paths: list[Path]) -> dict:
    """The element-wise mean of the checkpoints' ``state_dict`` tensors (float64 sums, cast back); integer
    tensors are the last checkpoint's. Raises :class:`UserError` when the checkpoints hold different keys
    or shapes (checkpoints of different models)."""
    sums: dict = {}
    last: dict = {}
    for index, path in enumerate(paths):
        state = _load(path)["state_dict"]
        if index and set(state) != set(sums):
            raise UserError(f"{path} holds other weights than {paths[0]}; average checkpoints of one run only")
        for key, tensor in state.items():
            if index and tensor.shape != last[key].shape:
                raise UserError(f"{path}: {key} has shape {tuple(tensor.shape)}, not {tuple(last[key].shape)}")
            if tensor.is_floating_point():
                sums[key] = tensor.double() if index == 0 else sums[key] + tensor.double()
            else:
                sums[key] = None
            last[key] = tensor
    return {
        key: (total / len(paths)).to(last[key].dtype) if total is not None else last[key].clone()
        for key, total in sums.items()
    }


def averaged_model(run: str | os.PathLike, count: int, selection: str = "best"):
    """The run's best ``.nemo`` with the mean weights of ``count`` checkpoints (:func:`select_checkpoints`),
    on CPU, and the checkpoints averaged. Keys of the checkpoints that the model lacks (e.g. a
    distillation teacher held during training) are left out; a model key missing from them is an error."""
    from asr_transfer.nemofile import restore_model

    chosen = select_checkpoints(run, count, selection)
    averaged = average_state_dicts([checkpoint.path for checkpoint in chosen])
    model = restore_model(best_nemo(run), "--run", map_location="cpu")
    wanted = model.state_dict()
    missing = sorted(set(wanted) - set(averaged))
    if missing:
        raise UserError(
            f"the checkpoints of {run} lack {len(missing)} weight(s) of its best model (first: {missing[0]}); "
            f"average checkpoints of the run that wrote that model"
        )
    model.load_state_dict({key: averaged[key] for key in wanted}, strict=True)
    return model, chosen
