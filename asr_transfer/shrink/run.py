"""``asr-transfer shrink``: several small CTC models from one large one, with baselines and a report.

In: a teacher ``.nemo``, student sizes (encoder layers), an audio manifest for step 1 (text not needed),
training/dev(/test) manifests for step 2, a ``finetune`` config, and step counts. Out, in OUT_DIR:
``student_<layers>.nemo`` (the student of that size with the best dev value, of any arm: two-step,
scratch or KD; stock NeMo classes), ``results.csv``, ``RESULTS.md``, ``frontier.png`` (error rate
against parameters) and ``dev_curves.png``. Under it: ``step1/`` (representation-learning runs),
``init/`` (random students), ``runs/`` (``asr-transfer finetune`` runs), ``results/`` (one JSON per
finished run), ``compute.json`` (FLOPs of one step of each kind) and, beside each step-1 run,
``check_L<layers>.json`` (the step-1 student against a random one before step 2: dev CTC loss, greedy
WER, per-layer CKA to the teacher, ``check``). Every piece is
skipped when a rerun finds it done, so a killed run resumes, and runs of other variants (``--init``,
``--separately``, ``--loss``) into the same OUT_DIR share the baselines and the report. Once a student's
step 2 is done, neither its check nor its step-1 ``.nemo`` is needed again: a rerun that adds a baseline
or a seed works after the step-1 students were deleted.

Step 1 trains the largest student to match the frozen teacher (``encrl``); smaller students are its
first layers. Step 1 ends when its dev loss stops improving (``step1.patience``) or after its steps,
and keeps its best-dev-loss student. Step 2 fine-tunes each with CTC through ``finetune`` (vocabulary
kept). Baselines: the same students from random weights with the same total compute (``scratch``: step
2's steps plus ceil(step 1's FLOPs / one CTC step's FLOPs), step 1's FLOPs being what its steps taken
cost, teacher forward passes included, ``compute``), with step 2's own steps and schedule (``scratch-1x``:
step 1 ablated, so what step 1 adds is measured at equal CTC steps), with 3x step 2's steps (``scratch-3x``), and with
CTC plus KL to the teacher for as many steps as ``scratch`` (``kd``; its steps cost more by the
teacher's forward pass, which its recorded compute includes).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from asr_transfer import layout
from asr_transfer.errors import UserError
from asr_transfer.fileio import atomic_open, write_json
from asr_transfer.shrink.encrl import Step1Config
from asr_transfer.shrink.losses import LOSSES

BASELINES = ("scratch", "scratch-1x", "scratch-3x", "kd")
INITS = ("random", "teacher")


@dataclass
class ShrinkSpec:
    """Everything a shrink run reads; the one place its defaults live (the command line and
    ``--set KEY=VALUE`` fill it through OmegaConf, so a misspelt key or a wrong type is refused)."""

    teacher: str = MISSING
    students: list[int] = MISSING
    audio: str = MISSING
    train: str = MISSING
    dev: str = MISSING
    out_dir: str = MISSING
    config: str = MISSING
    test: str | None = None
    lang: str | None = None
    step1: Step1Config = field(default_factory=Step1Config)
    ctc_steps: int = 500
    init: str = "random"
    separately: bool = False
    baselines: list[str] = field(default_factory=lambda: ["scratch", "kd"])
    seeds: list[int] = field(default_factory=lambda: [0])
    val_every: int = 25
    overrides: list[str] = field(default_factory=list)
    command: str = ""

    @property
    def two_step_arm(self) -> str:
        mode = "separate" if self.separately else "onerun"
        return f"twostep_{mode}_{self.init}_{self.step1.loss.replace('+', '-')}"


# the seed whose first batch every FLOP count is made on (seeds 0-1 of the published runs counted on it)
COMPUTE_SEED = 0


def step1_dir(out: Path, arm: str, seed: int, size: int | None = None) -> Path:
    folder = out / "step1" / f"{arm}_s{seed}"
    return folder / f"L{size}" if size is not None else folder


def student_file(folder: Path, size: int) -> Path:
    return folder / f"student_{size}.nemo"


def random_student_file(out: Path, size: int, seed: int) -> Path:
    return out / "init" / f"random_L{size}_s{seed}.nemo"


def run_dir(out: Path, arm: str, size: int, seed: int) -> Path:
    return layout.run_dir(out / "runs", arm, f"L{size}_s{seed}")


def result_file(out: Path, arm: str, size: int, seed: int) -> Path:
    return out / "results" / f"{arm}_L{size}_s{seed}.json"


def teacher_result_file(out: Path) -> Path:
    return out / "results" / "teacher.json"


def compute_file(out: Path) -> Path:
    return out / "compute.json"


def check_file(folder: Path, size: int) -> Path:
    return folder / f"check_L{size}.json"


def log(message: str) -> None:
    print(f"shrink: {message}", file=sys.stderr, flush=True)


def save_nemo(model, path: Path) -> Path:
    from asr_transfer.inference.export import save_portable

    return save_portable(model, path)


def check_inputs(spec: ShrinkSpec) -> None:
    """Everything the user gives, checked before a model is built or a file written."""
    import os

    from asr_transfer.manifests.checks import AUDIO_FIELDS, TRAINING_FIELDS, require_manifest
    from asr_transfer.nemofile import check_nemo_file

    check_nemo_file(spec.teacher, "--teacher")
    if not spec.students:
        raise UserError("--students is empty; give encoder layer counts such as 4,2,1")
    if min(spec.students) < 1:
        raise UserError(f"--students {spec.students} holds a size below 1; give encoder layer counts such as 4,2,1")
    if spec.step1.loss not in LOSSES:
        raise UserError(f"--loss {spec.step1.loss} is unknown; use one of {', '.join(LOSSES)}")
    if spec.step1.patience is not None and spec.step1.patience < 1:
        raise UserError(f"--rl-patience {spec.step1.patience} is not a number of dev-loss checks; give 1 or more")
    unknown = sorted(set(spec.baselines) - set(BASELINES))
    if unknown:
        raise UserError(f"--baselines {','.join(unknown)} unknown; use some of {','.join(BASELINES)} or none")
    if not os.path.isfile(spec.config):
        raise UserError(f"--config {spec.config} does not exist; give a finetune config such as recipes/conf/*.yaml")
    require_manifest(spec.audio, AUDIO_FIELDS, audio="exists", role="audio manifest (--audio)")
    require_manifest(spec.train, TRAINING_FIELDS, audio="exists", role="training manifest (--train)")
    require_manifest(spec.dev, TRAINING_FIELDS, audio="exists", role="dev manifest (--dev)")
    if spec.test:
        require_manifest(spec.test, TRAINING_FIELDS, audio="exists", role="test manifest (--test)")


def load_teacher(spec: ShrinkSpec):
    from asr_transfer.inference.model import load_model
    from asr_transfer.shrink.students import check_size, layer_list

    teacher = load_model(spec.teacher, named="--teacher")
    layers = layer_list(teacher)
    for size in spec.students:
        check_size(layers, size)
    return teacher, layers


def representation_runs(spec: ShrinkSpec) -> list[tuple[int, list[int]]]:
    """(size trained in step 1, sizes cut from it): one run for all, or one per student."""
    sizes = sorted(set(spec.students), reverse=True)
    if spec.separately:
        return [(size, [size]) for size in sizes]
    return [(sizes[0], sizes)]


def step1(spec: ShrinkSpec, teacher, layers, seed: int) -> dict[int, dict]:
    """Step 1 for one seed; returns size -> {nemo, steps, seconds} (a shared run's cost for each)."""
    from asr_transfer.curves import load_summary
    from asr_transfer.shrink.encrl import learn_representations
    from asr_transfer.shrink.students import derive, kept_layers, layer_list

    out = Path(spec.out_dir)
    students = {}
    for trained, sizes in representation_runs(spec):
        folder = step1_dir(out, spec.two_step_arm, seed, trained if spec.separately else None)
        summary_path = layout.summary_path(folder)
        summary = load_summary(str(summary_path))
        if summary is None:
            log(
                f"step 1, seed {seed}: {trained}-layer student learns the teacher's representations ({spec.step1.loss})"
            )
            torch.manual_seed(seed)
            kept = kept_layers(layers, trained, spread=spec.init == "teacher")
            student = derive(spec.teacher, kept, copy_weights=spec.init == "teacher")
            folder.mkdir(parents=True, exist_ok=True)
            summary = learn_representations(
                teacher,
                student,
                spec.audio,
                spec.dev,
                folder,
                spec.step1,
                seed=seed,
            )
            trained_nemo = save_nemo(student.cpu(), student_file(folder, trained))
            own_layers = layer_list(student)
            cut_from = {}  # str(size) -> the teacher layer each of its layers was cut from (JSON keys)
            for size in sizes:
                own = kept_layers(own_layers, size, False) if size != trained else list(range(trained))
                cut_from[str(size)] = [kept[index] for index in own]
                if size != trained:  # the first layers of the trained student
                    save_nemo(derive(str(trained_nemo), own, True), student_file(folder, size))
            summary |= {"teacher_layers_kept": kept, "init": spec.init, "teacher_layers": cut_from}
            write_json(summary_path, summary)
        for size in sizes:
            students[size] = {
                "nemo": str(student_file(folder, size)),
                "folder": str(folder),
                "trained": trained,
                "steps": summary["steps"],
                "seconds": summary["seconds"],
                "stopped_at": summary.get("stopped_at"),
                "best_step": summary.get("best_step", summary["steps"]),
                # JSON keys are strings; a summary from before teacher_layers was recorded: a prefix
                "teacher_layers": summary.get("teacher_layers", {}).get(
                    str(size), summary["teacher_layers_kept"][:size]
                ),
            }
    return students


def step_compute(spec: ShrinkSpec, teacher, layers, trained_sizes: list[int]) -> dict:
    """FLOPs of one step-1 step per trained size, of one CTC step and one KD step per student size, each
    on one real batch of its step's batch size, the one seed COMPUTE_SEED's run draws first (``compute``);
    cached in OUT_DIR/compute.json."""
    from asr_transfer.shrink import compute
    from asr_transfer.shrink.students import derive, kept_layers
    from asr_transfer.training.run import load_plan

    path = compute_file(Path(spec.out_dir))
    known = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    ctc_batch = int(load_plan(step2_plan(spec, Path(spec.teacher), "scratch", spec.students[0], 0, 1)).data.batch_size)
    # counts made with other batch sizes (a variant run with another --batch-size) are counted again
    same_step1 = known.get("step1_batch_size") == int(spec.step1.batch_size)
    same_ctc = known.get("ctc_batch_size") == ctc_batch
    step1_flops = known.get("step1_step_flops", {}) if same_step1 else {}
    ctc_flops = known.get("ctc_step_flops", {}) if same_ctc else {}
    teacher_flops = known.get("teacher_forward_flops") if same_ctc else None
    wanted_step1 = [size for size in trained_sizes if str(size) not in step1_flops]
    wanted_ctc = [size for size in spec.students if str(size) not in ctc_flops]
    if not wanted_step1 and not wanted_ctc and teacher_flops is not None:
        return known
    # one fixed batch, whatever seeds this invocation runs: the counts set the baselines' step budgets, which
    # must not change when a later invocation (or a fresh OUT_DIR) starts at another seed
    for size in sorted(set(wanted_step1) | set(wanted_ctc), reverse=True):
        torch.manual_seed(COMPUTE_SEED)
        student = derive(spec.teacher, kept_layers(layers, size, False), copy_weights=False)
        if size in wanted_step1:
            step1_flops[str(size)] = compute.step1_step_flops(
                teacher, student, spec.audio, int(spec.step1.batch_size), spec.step1.loss, COMPUTE_SEED
            )
        if size in wanted_ctc:
            ctc_flops[str(size)] = compute.ctc_step_flops(student, spec.train, ctc_batch, COMPUTE_SEED)
    if teacher_flops is None:
        teacher_flops = compute.teacher_forward_flops(teacher, spec.train, ctc_batch, COMPUTE_SEED)
    known = {
        "counted_by": "torch.utils.flop_counter.FlopCounterMode, one real batch, forward and backward",
        "step1_batch_size": int(spec.step1.batch_size),
        "ctc_batch_size": ctc_batch,
        "step1_step_flops": step1_flops,
        "ctc_step_flops": ctc_flops,
        "teacher_forward_flops": teacher_flops,
    }
    write_json(path, known)
    return known


def step1_check(spec: ShrinkSpec, teacher, layers, size: int, seed: int, student: dict) -> dict:
    """The usefulness check of one step-1 student (``check``), written beside its step-1 run."""
    from asr_transfer.curves import load_summary
    from asr_transfer.shrink.check import loss_terms, usefulness

    path = check_file(Path(student["folder"]), size)
    done = load_summary(str(path))
    if done:
        return done
    log(f"step 1 check, {size} layers, seed {seed}: step-1 student against a random one on dev")
    found = usefulness(
        teacher,
        student["nemo"],
        str(random_student(spec, layers, size, seed)),
        student["teacher_layers"],
        spec.dev,
        spec.lang,
    )
    step1_log = Path(student["folder"]) / "log.csv"
    result = {
        "arm": spec.two_step_arm,
        "layers": size,
        "seed": seed,
        "step1_loss_terms": loss_terms(str(step1_log), int(spec.step1.batch_size)) if step1_log.is_file() else None,
        "step1_steps": student["steps"],
        "step1_stopped_at": student["stopped_at"],
        "step1_best_step": student["best_step"],
        **found,
    }
    write_json(path, result)
    return result


def random_student(spec: ShrinkSpec, layers, size: int, seed: int) -> Path:
    from asr_transfer.shrink.students import derive, kept_layers

    path = random_student_file(Path(spec.out_dir), size, seed)
    if not path.is_file():
        torch.manual_seed(seed)
        save_nemo(derive(spec.teacher, kept_layers(layers, size, False), copy_weights=False), path)
    return path


def step2_plan(spec: ShrinkSpec, init: Path, arm: str, size: int, seed: int, steps: int):
    """The finetune run of one student: the student's own vocabulary, step 2's data and budget."""
    from asr_transfer.training.run import RunPlan

    run = run_dir(Path(spec.out_dir), arm, size, seed)
    overrides = [
        f"init.nemo={init}",
        "vocab.kind=keep",
        "vocab.dir=null",
        f"data.train_manifest={spec.train}",
        f"data.dev_manifest={spec.dev}",
    ]
    if spec.lang:
        overrides.append(f"lang={spec.lang}")
    if arm == "kd":
        overrides.append(f"distill.teacher={spec.teacher}")
    return RunPlan(
        config=spec.config,
        exp_dir=str(run.parent.parent),
        name=arm,
        version=run.name,
        steps=steps,
        val_every=spec.val_every,
        seed=seed,
        progress_bar=False,
        overrides=(*overrides, *spec.overrides),
        option_names={"distill.teacher": "--teacher", "data.train_manifest": "--train", "data.dev_manifest": "--dev"},
    )


def evaluated(spec: ShrinkSpec, model_path: str) -> dict:
    from asr_transfer.inference.evaluate import evaluate

    if not spec.test:
        return {"test_wer": None, "test_cer": None}
    summary = evaluate(model_path, spec.test)
    return {"test_wer": summary["wer"], "test_cer": summary["cer"]}


def step2(
    spec: ShrinkSpec,
    arm: str,
    init: Path,
    size: int,
    seed: int,
    steps: int,
    step1_cost: dict | None,
    flops: dict | None = None,
) -> dict:
    """One ``finetune`` run of a student and its result (cached in results/). ``flops``: ``step1_flops``
    (step 1's total charged to this run) and ``step_flops`` (one step-2 step), for the compute columns."""
    from asr_transfer.curves import load_summary
    from asr_transfer.inference.model import load_model
    from asr_transfer.shrink.students import parameter_count
    from asr_transfer.training.run import run_finetune

    out = Path(spec.out_dir)
    done = load_summary(str(result_file(out, arm, size, seed)))
    if done:
        return done
    log(f"step 2, {arm}, {size} layers, seed {seed}: {steps} CTC steps")
    run = run_finetune(step2_plan(spec, init, arm, size, seed, steps), out / "logs" / f"{arm}_L{size}_s{seed}.log")
    best, curve = run.best, run.curve
    result = {
        "arm": arm,
        "layers": size,
        "seed": seed,
        "parameters": parameter_count(load_model(str(best), "cpu")),
        "step1_steps": step1_cost["steps"] if step1_cost else 0,
        "step1_seconds": step1_cost["seconds"] if step1_cost else 0.0,
        "step2_steps": steps,
        "step2_seconds": curve[-1]["seconds"] if curve else None,
        "step1_stopped_at": step1_cost.get("stopped_at") if step1_cost else None,
        **compute_columns(flops, steps),
        **evaluated(spec, str(best)),
        "model": str(best),
        "curve": curve,
    }
    write_json(result_file(out, arm, size, seed), result)
    return result


def compute_columns(flops: dict | None, steps: int) -> dict:
    if not flops:
        return {"step1_flops": None, "step_flops": None, "compute_flops": None}
    return {
        "step1_flops": flops["step1_flops"],
        "step_flops": flops["step_flops"],
        "compute_flops": flops["step1_flops"] + steps * flops["step_flops"],
    }


def baseline_steps(spec: ShrinkSpec, compute: dict, size: int, step1_cost: dict) -> dict[str, int]:
    """Step budgets of the baselines for one student: scratch and KD get step 2's steps plus the CTC
    steps that cost what this student's step 1 cost (its steps taken, at the trained size's step FLOPs)."""
    from asr_transfer.shrink.compute import steps_for

    step1_flops = step1_cost["steps"] * compute["step1_step_flops"][str(step1_cost["trained"])]
    same = spec.ctc_steps + steps_for(step1_flops, compute["ctc_step_flops"][str(size)])
    return {"scratch": same, "scratch-1x": spec.ctc_steps, "scratch-3x": 3 * spec.ctc_steps, "kd": same}


def teacher_result(spec: ShrinkSpec, teacher, layers) -> dict:
    from asr_transfer.curves import load_summary
    from asr_transfer.inference.evaluate import evaluate
    from asr_transfer.shrink.students import parameter_count

    path = teacher_result_file(Path(spec.out_dir))
    done = load_summary(str(path))
    if done:
        return done
    dev = evaluate(spec.teacher, spec.dev, model=teacher)
    result = {
        "arm": "teacher",
        "layers": layers.count,
        "seed": None,
        "parameters": parameter_count(teacher),
        "dev_wer": dev["wer"],
        "dev_cer": dev["cer"],
        **evaluated(spec, spec.teacher),
        "model": spec.teacher,
    }
    write_json(path, result)
    return result


def shrink(spec: ShrinkSpec) -> Path:
    """The whole run; returns OUT_DIR."""
    from asr_transfer.shrink.report import write_report

    check_inputs(spec)
    out = Path(spec.out_dir)
    record_command(out, spec.command)
    teacher, layers = load_teacher(spec)
    teacher_result(spec, teacher, layers)
    for seed in spec.seeds:
        students = step1(spec, teacher, layers, seed)
        compute = step_compute(spec, teacher, layers, sorted({student["trained"] for student in students.values()}))
        for size, student in sorted(students.items(), reverse=True):
            if not result_file(out, spec.two_step_arm, size, seed).is_file():
                # the check describes the student before step 2; once step 2 is done, the step-1 students it
                # reads may have been deleted, and a rerun that adds a baseline must not need them
                step1_check(spec, teacher, layers, size, seed, student)
            step1_flops = student["steps"] * compute["step1_step_flops"][str(student["trained"])]
            flops = {"step1_flops": step1_flops, "step_flops": compute["ctc_step_flops"][str(size)]}
            step2(spec, spec.two_step_arm, Path(student["nemo"]), size, seed, spec.ctc_steps, student, flops)
        for size in sorted(set(spec.students), reverse=True):
            init = random_student(spec, layers, size, seed)
            steps = baseline_steps(spec, compute, size, students[size])
            for arm in spec.baselines:
                step_flops = compute["ctc_step_flops"][str(size)]
                if arm == "kd":
                    step_flops += compute["teacher_forward_flops"]
                step2(spec, arm, init, size, seed, steps[arm], None, {"step1_flops": 0, "step_flops": step_flops})
    write_report(out, spec.lang)
    return out


def record_command(out: Path, command: str) -> None:
    """Every invocation that wrote into OUT_DIR, once each, for the report's provenance."""
    path = out / "commands.txt"
    known = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    if command and command not in known:
        with atomic_open(path) as handle:
            handle.write("".join(f"{line}\n" for line in [*known, command]))


def int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


def name_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip() and part.strip() != "none"]


STEP1 = Step1Config()
DEFAULTS = ShrinkSpec()  # its required fields hold OmegaConf's MISSING marker


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transfer shrink",
        description="Several small CTC models from one large one (Hannan et al., Interspeech 2025). Step 1: the "
        "largest student (the teacher with fewer encoder layers, same width, vocabulary and front end) learns "
        "the frozen teacher's representations from audio alone: a contrastive loss between time-pooled encoder "
        "outputs plus an MSE between CTC log-probabilities, both masked by length. Smaller students are its "
        "first layers. Step 2: each student is CTC fine-tuned with `asr-transfer finetune`. Baselines in the "
        "same run: students from scratch and knowledge distillation. A rerun resumes.",
        epilog="Example: asr-transfer shrink --teacher de_teacher.nemo --students 4,2,1 --audio train.json "
        "--train train.json --dev dev.json --test test.json --config recipes/conf/tiny_fastconformer_bpe.yaml "
        "--lang de --rl-steps 500 --ctc-steps 500 exp/shrink/de",
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder for students, runs, results and plots")
    parser.add_argument(
        "--teacher", required=True, help="the large model (.nemo): Conformer/FastConformer or QuartzNet-style"
    )
    parser.add_argument("--students", required=True, type=int_list, help="encoder layers of each student, e.g. 4,2,1")
    parser.add_argument("--audio", required=True, help="manifest of step 1's audio; text is not read")
    parser.add_argument("--train", required=True, help="step 2's training manifest (audio and text)")
    parser.add_argument("--dev", required=True, help="dev manifest: step-1 dev loss, step-2 validation, best model")
    parser.add_argument("--test", help="test manifest for the report's test WER/CER")
    parser.add_argument("--config", required=True, help="finetune config for step 2 and the baselines")
    parser.add_argument("--lang", help="target language: its primary metric (WER, CER) picks best models")
    parser.add_argument("--rl-steps", type=int, help=f"step 1's steps: its schedule's length (default {STEP1.steps})")
    parser.add_argument(
        "--rl-patience",
        type=int,
        metavar="N",
        help="step 1 ends after N dev-loss checks without a new best (checks: step1.validations over --rl-steps) "
        "and keeps its best student (default: none, all --rl-steps)",
    )
    parser.add_argument("--ctc-steps", type=int, help=f"step 2's CTC fine-tuning steps (default {DEFAULTS.ctc_steps})")
    parser.add_argument("--loss", choices=LOSSES, help=f"step 1's loss (default {STEP1.loss})")
    parser.add_argument(
        "--init",
        choices=INITS,
        help="step 1's student starts random (as in the paper) or from every k-th teacher layer (DistilHuBERT)",
    )
    parser.add_argument("--separately", action="store_const", const=True, help="step 1 trains each student on its own")
    parser.add_argument(
        "--baselines",
        type=name_list,
        help=f"comma-separated, from {','.join(BASELINES)}, or none (default {','.join(DEFAULTS.baselines)}); "
        "scratch and kd train for step 2's steps plus the CTC steps whose FLOPs equal step 1's (teacher forward "
        "passes counted), scratch-1x for step 2's (step 1 ablated), scratch-3x for 3x step 2's",
    )
    parser.add_argument("--seeds", type=int_list, help="seeds, e.g. 0,1,2 (default 0)")
    parser.add_argument("--batch-size", type=int, help=f"step 1's batch size (default {STEP1.batch_size})")
    parser.add_argument("--rl-lr", type=float, help=f"step 1's peak learning rate (default {STEP1.lr:g})")
    parser.add_argument("--val-every", type=int, help=f"step 2's validation interval (default {DEFAULTS.val_every})")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a finetune override for every step-2 run, e.g. data.batch_size=8 (repeatable)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any setting of the run by its key, e.g. step1.weight_decay=0.01, step1.warmup_fraction=0.2, "
        "step1.betas=[0.9,0.999], step1.clip_norm=5 (repeatable; keys: ShrinkSpec and Step1Config in "
        "asr_transfer/shrink/)",
    )
    return parser


def spec_from_args(args: argparse.Namespace, command: str) -> ShrinkSpec:
    """The command line laid over :class:`ShrinkSpec`'s defaults, then ``--set`` over that."""
    from asr_transfer.training.config import ConfigError, apply_overrides

    given = {
        "teacher": args.teacher,
        "students": args.students,
        "audio": args.audio,
        "train": args.train,
        "dev": args.dev,
        "test": args.test,
        "out_dir": args.out_dir,
        "config": args.config,
        "lang": args.lang,
        "ctc_steps": args.ctc_steps,
        "init": args.init,
        "separately": args.separately,
        "baselines": args.baselines,
        "seeds": args.seeds,
        "val_every": args.val_every,
        "overrides": args.override,
        "command": command,
        "step1": {
            "steps": args.rl_steps,
            "patience": args.rl_patience,
            "loss": args.loss,
            "batch_size": args.batch_size,
            "lr": args.rl_lr,
        },
    }
    given["step1"] = {key: value for key, value in given["step1"].items() if value is not None}
    try:
        spec = OmegaConf.merge(
            OmegaConf.structured(ShrinkSpec), {key: value for key, value in given.items() if value is not None}
        )
        spec = apply_overrides(spec, args.set)
        return OmegaConf.to_object(spec)
    except OmegaConfBaseException as error:
        raise ConfigError(f"{' '.join(str(error).split())}; see asr-transfer shrink --help") from None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    spec = spec_from_args(args, shlex.join(["asr-transfer", "shrink", *argv]))
    out = shrink(spec)
    print(f"shrink: results in {out / 'RESULTS.md'}")
    return 0
