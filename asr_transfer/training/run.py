"""A fine-tuning run, as every caller asks for one: the study, shrink, the demo, the domain and
base-training recipes (through ``asr-transfer finetune``'s run options) and Python code.

In: a :class:`RunPlan`: a fine-tuning config file, where the run goes (``exp_dir/name/version``), its
step budget, validation interval, seed, whether to draw a progress bar, early stopping's patience, the
caller's own overrides, and how the caller's user names the config keys they set
(``{"init.nemo": "--base"}``), so that an error about them names the user's option. Out: a :class:`RunOutcome` (the run
folder, its best model, its dev curve), or a :class:`~asr_transfer.errors.UserError` with the user's
option in it.

:func:`plan_overrides` is the one place the standard override list is built. :func:`run_finetune` with
a ``log_path`` trains in a fresh process (NeMo and Lightning keep global state between fits) whose
output goes to that file; a user error there comes back as the exception, not as a line to look for.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from asr_transfer.errors import UserError
from asr_transfer.layout import best_nemo


@dataclass(frozen=True)
class RunPlan:
    config: str  # an asr-transfer finetune config (recipes/conf/*.yaml)
    exp_dir: str | None = None  # the run folder is exp_dir/name/version (NeMo's exp_manager layout)
    name: str | None = None
    version: str | None = None
    steps: int | None = None  # trainer.max_steps
    val_every: int | None = None  # trainer.val_check_interval, at most the step budget (one validation at least)
    seed: int | None = None
    progress_bar: bool | None = None  # None: the config's trainer.enable_progress_bar
    patience: int | None = None  # stop after this many validations without a new best (NeMo's early stopping)
    overrides: tuple[str, ...] = ()  # the caller's own finetune overrides, applied last
    option_names: Mapping[str, str] = field(default_factory=dict)  # config key -> the user's option


@dataclass
class RunOutcome:
    run_dir: Path
    best: Path | None  # the run's best model (checkpoints/<name>.nemo); None in a DDP worker rank
    curve: list[dict]  # dev metrics at every validation: step, seconds, dev_wer, dev_cer


def plan_overrides(plan: RunPlan) -> list[str]:
    """The finetune overrides a plan stands for, the caller's own last (so they win)."""
    overrides = []
    for key, value in (
        ("exp_manager.exp_dir", plan.exp_dir),
        ("exp_manager.name", plan.name),
        ("exp_manager.version", plan.version),
        ("trainer.max_steps", plan.steps),
        ("seed", plan.seed),
    ):
        if value is not None:
            overrides.append(f"{key}={value}")
    if plan.val_every is not None:
        interval = min(int(plan.val_every), int(plan.steps)) if plan.steps is not None else int(plan.val_every)
        overrides.append(f"trainer.val_check_interval={interval}")
    if plan.progress_bar is not None:
        overrides.append(f"trainer.enable_progress_bar={str(plan.progress_bar).lower()}")
    if plan.patience is not None:
        if int(plan.patience) < 1:
            raise UserError(f"patience {plan.patience} is not a number of validations; give 1 or more")
        overrides += [
            "exp_manager.create_early_stopping_callback=true",
            f"exp_manager.early_stopping_callback_params.patience={int(plan.patience)}",
        ]
    return [*overrides, *plan.overrides]


def option_name(option_names: Mapping[str, str] | None, key: str) -> str:
    """How a message names config key ``key``: the caller's option (``--base``) or ``key=``."""
    return (option_names or {}).get(key, f"{key}=")


def load_plan(plan: RunPlan):
    from asr_transfer.training.config import load_config

    return load_config(plan.config, plan_overrides(plan))


def planned_run_dir(plan: RunPlan) -> Path:
    from asr_transfer.layout import run_dir_of

    return run_dir_of(load_plan(plan).exp_manager)


def launched_as_rank_zero() -> bool:
    """Whether this process is global rank 0 of a run Lightning may have launched on several devices or
    nodes: its launcher gives each worker process LOCAL_RANK and NODE_RANK."""
    return int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0


def outcome(folder: Path) -> RunOutcome:
    from asr_transfer.curves import read_points
    from asr_transfer.layout import metrics_path

    curve = read_points(folder) if metrics_path(folder).is_file() else []
    return RunOutcome(run_dir=folder, best=best_nemo(folder), curve=curve)


def run_finetune(plan: RunPlan, log_path: str | os.PathLike | None = None, argv: list[str] | None = None) -> RunOutcome:
    """Train (or resume) the run ``plan`` names and return what it made. With ``log_path``: in a fresh
    process whose output is appended to that file."""
    if log_path is None:
        from asr_transfer.training.finetune import finetune

        folder = finetune(load_plan(plan), argv, option_names=plan.option_names)
        if not launched_as_rank_zero():
            # Rank 0 alone writes checkpoints/<name>.nemo, and it may not have yet: a worker has nothing to report.
            return RunOutcome(run_dir=Path(folder), best=None, curve=[])
        return outcome(Path(folder))
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(plan, str(log_path), argv, sender))
    process.start()
    sender.close()
    report = receiver.recv() if receiver.poll(None) else None
    process.join()
    if isinstance(report, tuple) and report[0] == "user_error":
        raise UserError(f"{report[1]} (fine-tuning log: {log_path})")
    if not (isinstance(report, tuple) and report[0] == "done") or process.exitcode != 0:
        raise RuntimeError(f"fine-tuning crashed (exit {process.exitcode}); see the traceback in {log_path}")
    return outcome(Path(report[1]))


def _child(plan: RunPlan, log_path: str, argv: list[str] | None, sender) -> None:
    """The spawned process: output to ``log_path``, the result or the user error back through ``sender``."""
    import traceback

    with open(log_path, "a", encoding="utf-8", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = log
        try:
            from asr_transfer.training.finetune import finetune

            print(f"$ asr-transfer finetune --config {plan.config} {' '.join(plan_overrides(plan))}", flush=True)
            folder = finetune(load_plan(plan), argv, option_names=plan.option_names)
        except UserError as error:
            print(f"error: {error}", flush=True)
            sender.send(("user_error", str(error)))
            return
        except BaseException:
            traceback.print_exc()
            sender.send(("crash", None))
            raise
        sender.send(("done", str(folder)))
