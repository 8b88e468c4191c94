"""Run a transfer study: every arm on the same target data, step budget and seeds, at several data budgets.

In: a study config (``recipes/study/conf/*.yaml``): the target data (a synthetic Common Voice release
made here, or real NeMo manifests), the fine-tuning config and base model, the arms (each a way to
initialize plus ``asr-transfer finetune`` overrides), the data budgets (fractions of the training
hours) and which arms run at every budget, the seeds, the step budget and a target dev WER.
Out, in the study folder: ``data/`` and ``tokenizers/``, ``budgets/train_pNNN.json``,
``runs/pNNN/<arm>/sS/`` (one fine-tuning run each, with ``study_result.json`` once evaluated),
``results.csv`` (one row per run), ``curves.csv`` (dev WER and CER at every validation), ``results.json``,
``inspect/<arm>.{csv,png}`` (per-layer weight change of each transfer arm against the base),
``RESULTS.md`` and the plots (``wer_vs_steps.png``, ``wer_vs_data.png``, ``weight_change.png``).

A rerun skips finished runs and resumes a killed one from its last checkpoint.

``asr-transfer study --config recipes/study/conf/de_synthetic.yaml [key=value ...]``
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from asr_transfer.fileio import atomic_open, read_manifest, write_json
from asr_transfer.training.config import ConfigError, apply_overrides

FULL_BUDGET = 1.0

DEFAULTS = {
    "name": "study",
    "description": "",
    "lang": "de",
    "out_dir": "exp/study/${name}",
    "data": {
        "synth": None,  # {clips, seed, accents: [...]}: a synthetic Common Voice release made here
        "train_manifest": None,
        "dev_manifest": None,
        "test_manifest": None,
    },
    "vocab": {"kind": "char", "dir": None, "vocab_size": 128},
    "finetune_config": "recipes/conf/tiny_quartznet_char.yaml",
    "base": {"nemo": None, "pretrained": None},
    "steps": 150,
    "val_every": 25,
    "seeds": [0],
    "target_wer": 0.6,
    "budgets": [FULL_BUDGET],
    "budget_arms": None,  # arms that run at every budget (default: all); every arm runs at the full budget
    "reference_arm": "scratch",  # steps-to-target ratios are this arm's steps over each arm's
    "comparisons": [],  # [{name, arm, against}]: sentences in RESULTS.md
    "evaluate_base": False,  # the base on the target test set before any training
    "inspect": True,
    "overrides": [],  # finetune overrides for every arm
    "arms": {"scratch": {"init": "scratch"}, "transfer": {"init": "base"}},
}


@dataclass
class RunResult:
    budget: float
    arm: str
    seed: int
    train_hours: float
    train_utterances: int
    steps: int
    test_wer: float | None
    test_cer: float | None
    best_dev_wer: float | None
    final_dev_wer: float | None
    steps_to_target: int | None
    seconds_to_target: float | None
    train_seconds: float | None
    model: str
    curve: list[dict] = field(default_factory=list)
    best_dev_cer: float | None = None  # last: run records written before dev CER was logged still load


def load_study_config(path: str, overrides: list[str] | None = None) -> DictConfig:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"study config {path} does not exist (see recipes/study/conf/)")
    cfg = OmegaConf.merge(OmegaConf.create(DEFAULTS), OmegaConf.load(path))
    cfg = apply_overrides(cfg, list(overrides or []))
    validate_config(cfg)
    return cfg


def validate_config(cfg: DictConfig) -> None:
    data = cfg.data
    if not data.synth and not (data.train_manifest and data.dev_manifest and data.test_manifest):
        raise ConfigError("give data.synth (a synthetic corpus) or data.train_manifest, dev_manifest, test_manifest")
    uses_base = any(arm.get("init", "base") == "base" for arm in cfg.arms.values())
    if uses_base and not (cfg.base.nemo or cfg.base.pretrained):
        raise ConfigError("an arm starts from the base: set base.nemo or base.pretrained")
    if cfg.reference_arm not in cfg.arms:
        raise ConfigError(f"reference_arm {cfg.reference_arm} is not one of the arms {list(cfg.arms)}")
    for arm in budget_arms(cfg):
        if arm not in cfg.arms:
            raise ConfigError(f"budget_arms names {arm}, which is not one of the arms {list(cfg.arms)}")
    for budget in cfg.budgets:
        if not 0 < float(budget) <= FULL_BUDGET:
            raise ConfigError(f"budget {budget} is not a fraction in (0, 1]")


def budget_arms(cfg: DictConfig) -> list[str]:
    return list(cfg.budget_arms) if cfg.budget_arms is not None else list(cfg.arms)


def budget_tag(budget: float) -> str:
    return f"p{round(float(budget) * 100):03d}"


def grid(cfg: DictConfig) -> list[tuple[float, str, int]]:
    """(budget, arm, seed) of every run: all arms at the full budget, the budget arms at the others."""
    budgets = sorted({float(b) for b in cfg.budgets} | {FULL_BUDGET})
    runs = []
    for budget in budgets:
        arms = list(cfg.arms) if budget == FULL_BUDGET else budget_arms(cfg)
        runs += [(budget, arm, int(seed)) for arm in arms for seed in cfg.seeds]
    return runs


# Paths: the skip checks and the writers share these.
def data_dir(out: Path) -> Path:
    return out / "data"


def vocab_dir(cfg: DictConfig, out: Path) -> Path:
    if cfg.vocab.dir:
        return Path(cfg.vocab.dir)
    kind = cfg.vocab.kind
    leaf = "char" if kind == "char" else f"spe_{kind}_v{cfg.vocab.vocab_size}"
    return out / "tokenizers" / cfg.lang / leaf


def budget_manifest(out: Path, budget: float) -> Path:
    return out / "budgets" / f"train_{budget_tag(budget)}.json"


def run_dir(out: Path, budget: float, arm: str, seed: int) -> Path:
    return out / "runs" / budget_tag(budget) / arm / f"s{seed}"


def result_path(out: Path, budget: float, arm: str, seed: int) -> Path:
    return run_dir(out, budget, arm, seed) / "study_result.json"


def manifests(cfg: DictConfig, out: Path) -> dict[str, str]:
    if cfg.data.synth:
        return {split: str(data_dir(out) / f"{split}.json") for split in ("train", "dev", "test")}
    return {"train": cfg.data.train_manifest, "dev": cfg.data.dev_manifest, "test": cfg.data.test_manifest}


def log(message: str) -> None:
    print(f"{time.strftime('%F %T')} {message}", flush=True)


def prepare_data(cfg: DictConfig, out: Path, jobs: int | None) -> dict[str, str]:
    """Synthesize and prepare the target corpus (when the config asks for one) and the vocabulary."""
    from asr_transfer.manifests import prepare_cv
    from asr_transfer.synth import synth_cv
    from asr_transfer.tokenizers import train as tokenizer

    paths = manifests(cfg, out)
    jobs_args = ["--jobs", str(jobs)] if jobs else []
    if cfg.data.synth and not (data_dir(out) / "summary.json").exists():
        synth = cfg.data.synth
        corpus = out / "corpus"
        log(f"synthesize {cfg.lang} Common Voice ({synth.clips} clips) -> {corpus}")
        accents = [arg for accent in synth.get("accents") or [] for arg in ("--accent", accent)]
        argv = [str(corpus), "--lang", cfg.lang, "--clips", str(synth.clips), "--seed", str(synth.get("seed", 0))]
        if synth_cv.main([*argv, *accents, *jobs_args, "--no-progress"]) != 0:
            raise RuntimeError("synthesis failed")
        log(f"manifests -> {data_dir(out)}")
        if prepare_cv.main([str(corpus), str(data_dir(out)), "--lang", cfg.lang, *jobs_args, "--no-progress"]) != 0:
            raise RuntimeError("prepare-cv failed")
    for split, path in paths.items():
        if not os.path.isfile(path):
            raise FileNotFoundError(f"the {split} manifest {path} does not exist")
    vocab = vocab_dir(cfg, out)
    if not cfg.vocab.dir and not (vocab / ("vocab.txt" if cfg.vocab.kind == "char" else "tokenizer.model")).exists():
        log(f"{cfg.vocab.kind} vocabulary -> {vocab}")
        size = [] if cfg.vocab.kind == "char" else ["--vocab-size", str(cfg.vocab.vocab_size)]
        argv = [str(out / "tokenizers"), "--manifest", paths["train"], "--lang", cfg.lang, "--kind", cfg.vocab.kind]
        if tokenizer.main([*argv, *size]) != 0:
            raise RuntimeError("tokenizer training failed")
    return paths


def prepare_budgets(cfg: DictConfig, out: Path, train_manifest: str) -> dict[float, dict]:
    """One training manifest per budget; with one seed, a smaller budget's utterances lie inside a larger one's."""
    from asr_transfer.manifests.tools import manifest_stats, subset_manifest

    total_hours = manifest_stats(train_manifest)["hours"]
    budgets = {}
    for budget in sorted({float(b) for b in cfg.budgets} | {FULL_BUDGET}):
        path = budget_manifest(out, budget)
        if budget == FULL_BUDGET:
            path = Path(train_manifest)
        elif not path.exists():
            subset_manifest(train_manifest, total_hours * budget, str(path), seed=int(cfg.data.get("subset_seed", 0)))
        entries = list(read_manifest(path))
        hours = sum(float(entry["duration"]) for entry in entries) / 3600
        budgets[budget] = {"manifest": str(path), "hours": round(hours, 4), "utterances": len(entries)}
    return budgets


def arm_overrides(cfg: DictConfig, arm: str, out: Path, paths: dict, budget: dict, budget_value: float, seed: int):
    spec = cfg.arms[arm]
    init = spec.get("init", "base")
    if init == "scratch":
        init_args = ["init.scratch=true"]
    elif init == "base":
        init_args = [f"init.nemo={cfg.base.nemo}"] if cfg.base.nemo else [f"init.pretrained={cfg.base.pretrained}"]
    else:
        raise ConfigError(f"arm {arm}: init must be scratch or base, not {init!r}")
    run = run_dir(out, budget_value, arm, seed)
    return [
        *init_args,
        f"vocab.kind={cfg.vocab.kind}",
        f"vocab.dir={vocab_dir(cfg, out)}",
        f"data.train_manifest={budget['manifest']}",
        f"data.dev_manifest={paths['dev']}",
        f"trainer.max_steps={cfg.steps}",
        f"trainer.val_check_interval={cfg.val_every}",
        "trainer.enable_progress_bar=false",
        f"exp_manager.exp_dir={run.parent.parent}",
        f"exp_manager.name={arm}",
        f"exp_manager.version={run.name}",
        f"seed={seed}",
        *cfg.overrides,
        *(spec.get("overrides") or []),
    ]


def train(cfg: DictConfig, overrides: list[str], log_path: Path) -> None:
    """One fine-tuning run in its own process: NeMo and Lightning keep global state between fits."""
    command = [sys.executable, "-m", "asr_transfer.cli", "finetune", "--config", cfg.finetune_config, *overrides]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as handle:
        handle.write("$ " + " ".join(command) + "\n")
        handle.flush()
        finished = subprocess.run(
            command, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    if finished.returncode != 0:
        raise RuntimeError(f"fine-tuning failed (exit {finished.returncode}); see {log_path}")


def first_reaching(curve: list[dict], target: float) -> dict | None:
    return next((point for point in curve if point["dev_wer"] <= target), None)


def evaluate_run(cfg: DictConfig, out: Path, paths: dict, budget: dict, key: tuple[float, str, int]) -> RunResult:
    from asr_transfer.training.callbacks import metrics_path
    from asr_transfer.training.evaluate import evaluate
    from asr_transfer.training.export import best_nemo
    from asr_transfer.training.report import read_points

    budget_value, arm, seed = key
    run = run_dir(out, budget_value, arm, seed)
    model = best_nemo(str(run))
    summary = evaluate(str(model), paths["test"], out_dir=str(run / "eval_test"))
    curve = read_points(run) if os.path.isfile(metrics_path(run)) else []
    reached = first_reaching(curve, float(cfg.target_wer))
    return RunResult(
        budget=budget_value,
        arm=arm,
        seed=seed,
        train_hours=budget["hours"],
        train_utterances=budget["utterances"],
        steps=int(cfg.steps),
        test_wer=summary["wer"],
        test_cer=summary["cer"],
        best_dev_wer=min((point["dev_wer"] for point in curve), default=None),
        final_dev_wer=curve[-1]["dev_wer"] if curve else None,
        steps_to_target=reached["step"] if reached else None,
        seconds_to_target=reached["seconds"] if reached else None,
        train_seconds=curve[-1]["seconds"] if curve else None,
        model=str(model),
        curve=curve,
        best_dev_cer=min((point["dev_cer"] for point in curve if point.get("dev_cer") is not None), default=None),
    )


def load_result(path: Path) -> RunResult:
    import json

    with open(path, encoding="utf-8") as handle:
        return RunResult(**json.load(handle))


def run_all(cfg: DictConfig, out: Path, paths: dict, budgets: dict) -> list[RunResult]:
    results = []
    keys = grid(cfg)
    for number, key in enumerate(keys, start=1):
        budget_value, arm, seed = key
        done = result_path(out, *key)
        label = f"[{number}/{len(keys)}] {budget_tag(budget_value)} {arm} seed {seed}"
        if done.exists():
            results.append(load_result(done))
            log(f"{label}: done before, skipped")
            continue
        started = time.time()
        overrides = arm_overrides(cfg, arm, out, paths, budgets[budget_value], budget_value, seed)
        log(f"{label}: {cfg.steps} steps on {budgets[budget_value]['hours']:.3f} h")
        train(cfg, overrides, out / "logs" / f"{budget_tag(budget_value)}_{arm}_s{seed}.log")
        result = evaluate_run(cfg, out, paths, budgets[budget_value], key)
        write_json(done, asdict(result))
        results.append(result)
        seconds = time.time() - started
        log(f"{label}: test WER {result.test_wer:.3f}, best dev WER {result.best_dev_wer}, {seconds:.0f} s")
    return results


def write_tables(out: Path, results: list[RunResult]) -> None:
    columns = [name for name in RunResult.__dataclass_fields__ if name not in ("curve", "model")]
    with atomic_open(out / "results.csv") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for result in results:
            writer.writerow(asdict(result))
    with atomic_open(out / "curves.csv") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["budget", "arm", "seed", "step", "seconds", "dev_wer", "dev_cer"])
        for result in results:
            for point in result.curve:
                writer.writerow(
                    [result.budget, result.arm, result.seed, point["step"], point["seconds"], point["dev_wer"]]
                    + [point.get("dev_cer", "")]
                )


def inspect_arms(cfg: DictConfig, out: Path, results: list[RunResult]) -> dict[str, dict]:
    """Per-layer weight change of every full-budget transfer arm (first seed) against the base."""
    from asr_transfer.training import introspect
    from asr_transfer.training.inference import load_model

    if not cfg.inspect or not cfg.base.nemo:
        return {}
    base = load_model(cfg.base.nemo, "cpu")
    first_seed = int(cfg.seeds[0])
    found = {}
    for result in results:
        if (
            result.budget != FULL_BUDGET
            or result.seed != first_seed
            or cfg.arms[result.arm].get("init", "base") != "base"
        ):
            continue
        changes = introspect.layer_changes(base, load_model(result.model, "cpu"))
        introspect.write_csv(changes, str(out / "inspect" / f"{result.arm}.csv"))
        introspect.plot_changes(
            changes, str(out / "inspect" / f"{result.arm}.png"), f"{result.arm}: weight change against the base"
        )
        found[result.arm] = {"blocks": introspect.block_means(changes), "sentence": introspect.describe(changes)}
    return found


def evaluate_base(cfg: DictConfig, out: Path, paths: dict) -> dict | None:
    from asr_transfer.training.evaluate import evaluate
    from asr_transfer.training.report import load_summary

    if not cfg.evaluate_base or not cfg.base.nemo:
        return None
    path = out / "base_eval" / "summary.json"
    return load_summary(str(path)) or evaluate(cfg.base.nemo, paths["test"], out_dir=str(path.parent))


def main(cfg: DictConfig, command_line: str = "", jobs: int | None = None) -> Path:
    """Run the whole study; returns its folder."""
    from asr_transfer.study.report import write_report

    started = time.time()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_open(out / "study_config.yaml") as handle:
        handle.write(OmegaConf.to_yaml(cfg))
    paths = prepare_data(cfg, out, jobs)
    budgets = prepare_budgets(cfg, out, paths["train"])
    base_summary = evaluate_base(cfg, out, paths)
    results = run_all(cfg, out, paths, budgets)
    write_tables(out, results)
    inspected = inspect_arms(cfg, out, results)
    record = {
        "name": cfg.name,
        "command": command_line,
        "budgets": {budget_tag(b): info for b, info in budgets.items()},
        "base_on_test": base_summary,
        "runs": [{k: v for k, v in asdict(r).items() if k != "curve"} for r in results],
        "inspect": inspected,
        "wall_seconds_this_invocation": round(time.time() - started, 1),
    }
    write_json(out / "results.json", record)
    write_report(cfg, out, results, budgets, base_summary, inspected, command_line)
    log(f"wrote {out / 'RESULTS.md'}")
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transfer study",
        description="Run a transfer study: arms (scratch, transfer, shared-token init, frozen or re-initialized "
        "blocks) x data budgets, same steps and seeds; writes RESULTS.md, results.csv, curves.csv and plots.",
        epilog="Overrides change the study config, e.g. steps=40 'budgets=[0.5,1.0]' out_dir=exp/study/quick. "
        "A rerun skips finished runs.",
    )
    parser.add_argument("--config", required=True, help="study config (recipes/study/conf/*.yaml)")
    parser.add_argument("--jobs", type=int, help="processes for synthesis and data preparation")
    parser.add_argument("overrides", nargs="*", help="key=value changes to the study config")
    return parser


def cli(argv: list[str] | None = None) -> int:
    import shlex

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        cfg = load_study_config(args.config, args.overrides)
        main(cfg, shlex.join(["asr-transfer", "study", *argv]), args.jobs)
    except (ConfigError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
