"""Run a transfer study: every arm on the same target data, step budget and seeds, at several data budgets.

In: a study config (``recipes/study/conf/*.yaml``): the target data (a synthetic Common Voice release
made here, or real NeMo manifests), the fine-tuning config and base model, the arms (each a way to
initialize plus ``asr-transfer finetune`` overrides), the data budgets (fractions of the training
hours) and which arms run at every budget, the seeds, the step budget and a ``target`` dev value of the
language's primary metric (WER, CER for Cantonese).
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
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from asr_transfer import layout
from asr_transfer.fileio import atomic_open, read_manifest, write_json
from asr_transfer.manifests.pipeline import summary_path
from asr_transfer.study.config import FULL_BUDGET, budget_arms, load_study_config


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


def budget_tag(budget: float) -> str:
    return f"p{round(float(budget) * 100):03d}"


def grid(cfg: DictConfig) -> list[tuple[float, str, int]]:
    """(budget, arm, seed) of every run: all arms at the full budget, the budget arms at the others."""
    budgets = sorted({float(b) for b in cfg.budgets} | {FULL_BUDGET})
    runs = []
    for budget in budgets:
        arms = list(cfg.arms) if budget == FULL_BUDGET else budget_arms(cfg)
        # Seed by seed: a study stopped part-way has whole arm pairs to report.
        runs += [(budget, arm, int(seed)) for seed in cfg.seeds for arm in arms]
    return runs


# Paths: the skip checks and the writers share these.
def data_dir(out: Path) -> Path:
    return out / "data"


def vocab_dir(cfg: DictConfig, out: Path) -> Path:
    if cfg.vocab.dir:
        return Path(cfg.vocab.dir)
    return layout.vocab_dir(out / "tokenizers", cfg.lang, cfg.vocab.kind, cfg.vocab.vocab_size)


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
    from asr_transfer.manifests.pipeline import BuildOptions
    from asr_transfer.manifests.prepare_cv import prepare_common_voice
    from asr_transfer.synth.synth_cv import synth_cv
    from asr_transfer.tokenizers.train import train_tokenizer

    paths = manifests(cfg, out)
    if cfg.data.synth and not os.path.isfile(summary_path(data_dir(out))):
        synth = cfg.data.synth
        corpus = out / "corpus"
        log(f"synthesize {cfg.lang} Common Voice ({synth.clips} clips) -> {corpus}")
        locale_dir = synth_cv(
            cfg.lang,
            synth.clips,
            str(corpus),
            seed=synth.seed,
            accents=list(synth.accents) or None,
            jobs=jobs,
            progress=False,
        )
        log(f"manifests -> {data_dir(out)}")
        options = BuildOptions(progress=False, **({"jobs": jobs} if jobs else {}))
        prepare_common_voice(str(locale_dir), str(data_dir(out)), cfg.lang, options)
    vocab = vocab_dir(cfg, out)
    if not cfg.vocab.dir and not layout.vocab_done_file(vocab, cfg.vocab.kind).exists():
        log(f"{cfg.vocab.kind} vocabulary -> {vocab}")
        size = None if cfg.vocab.kind == layout.CHAR else int(cfg.vocab.vocab_size)
        train_tokenizer([paths["train"]], cfg.lang, cfg.vocab.kind, out / "tokenizers", size)
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


def arm_plan(cfg: DictConfig, arm: str, out: Path, paths: dict, budget: dict, budget_value: float, seed: int):
    """The fine-tuning run of one arm, data budget and seed."""
    from asr_transfer.training.run import RunPlan

    spec = cfg.arms[arm]
    if spec.init == "scratch":
        init_args = ["init.scratch=true"]
    else:
        init_args = [f"init.nemo={cfg.base.nemo}"] if cfg.base.nemo else [f"init.pretrained={cfg.base.pretrained}"]
    run = run_dir(out, budget_value, arm, seed)
    return RunPlan(
        config=cfg.finetune_config,
        exp_dir=str(run.parent.parent),
        name=arm,
        version=run.name,
        steps=int(cfg.steps),
        val_every=int(cfg.val_every),
        seed=seed,
        progress_bar=False,
        patience=cfg.patience,
        overrides=(
            *init_args,
            f"lang={cfg.lang}",
            f"vocab.kind={cfg.vocab.kind}",
            f"vocab.dir={vocab_dir(cfg, out)}",
            f"data.train_manifest={budget['manifest']}",
            f"data.dev_manifest={paths['dev']}",
            *cfg.overrides,
            *spec.overrides,
        ),
        # An error about the base names the study's key, not finetune's.
        option_names={"init.nemo": "base.nemo=", "init.pretrained": "base.pretrained="},
    )


def evaluate_run(cfg: DictConfig, out: Path, paths: dict, budget: dict, key: tuple[float, str, int]) -> RunResult:
    from asr_transfer.curves import first_reaching, read_points
    from asr_transfer.inference.evaluate import evaluate
    from asr_transfer.languages import primary_metric

    budget_value, arm, seed = key
    run = run_dir(out, budget_value, arm, seed)
    model = layout.best_nemo(run)
    summary = evaluate(str(model), paths["test"], out_dir=str(run / "eval_test"))
    curve = read_points(run) if layout.metrics_path(run).is_file() else []
    reached = first_reaching(curve, primary_metric(cfg.lang), float(cfg.target))  # the language's metric
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
    from asr_transfer.training.run import run_finetune

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
        plan = arm_plan(cfg, arm, out, paths, budgets[budget_value], budget_value, seed)
        log(f"{label}: {cfg.steps} steps on {budgets[budget_value]['hours']:.3f} h")
        run_finetune(plan, out / "logs" / f"{budget_tag(budget_value)}_{arm}_s{seed}.log")
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
    from asr_transfer.analysis import introspect
    from asr_transfer.inference.model import load_model

    if not cfg.inspect or not cfg.base.nemo:
        return {}
    base = load_model(cfg.base.nemo, "cpu")
    first_seed = int(cfg.seeds[0])
    found = {}
    for result in results:
        if result.budget != FULL_BUDGET or result.seed != first_seed or cfg.arms[result.arm].init != "base":
            continue
        changes = introspect.layer_changes(base, load_model(result.model, "cpu"))
        introspect.write_csv(changes, str(out / "inspect" / f"{result.arm}.csv"))
        introspect.plot_changes(
            changes, str(out / "inspect" / f"{result.arm}.png"), f"{result.arm}: weight change against the base"
        )
        found[result.arm] = {"blocks": introspect.block_means(changes), "sentence": introspect.describe(changes)}
    return found


def evaluate_base(cfg: DictConfig, out: Path, paths: dict) -> dict | None:
    from asr_transfer.curves import load_summary
    from asr_transfer.inference.evaluate import evaluate
    from asr_transfer.inference.model import load_model

    if not cfg.evaluate_base or not cfg.base.nemo:
        return None
    path = layout.summary_path(out / "base_eval")
    done = load_summary(str(path))
    if done:
        return done
    model = load_model(cfg.base.nemo, named="base.nemo=")
    return evaluate(cfg.base.nemo, paths["test"], out_dir=str(path.parent), model=model)


def run_study(cfg: DictConfig, command_line: str = "", jobs: int | None = None) -> Path:
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
    parser.add_argument("--jobs", type=int, help="processes for synthesis and data preparation (default: all cores)")
    parser.add_argument("--print-out-dir", action="store_true", help="print the study folder and exit")
    parser.add_argument("overrides", nargs="*", help="key=value changes to the study config")
    return parser


def main(argv: list[str] | None = None) -> int:
    import shlex

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    cfg = load_study_config(args.config, args.overrides)
    if args.print_out_dir:
        print(cfg.out_dir)
        return 0
    run_study(cfg, shlex.join(["asr-transfer", "study", *argv]), args.jobs)
    return 0
