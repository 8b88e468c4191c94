"""RESULTS.md and plots of a transfer study.

In: the study config, its run results (``grid.RunResult``), the data budgets, the base's WER on the
target before training and the weight introspection. Out, in the study folder: ``RESULTS.md``,
``wer_vs_steps.png`` (dev WER and CER against steps per arm at the full budget, the target dashed),
``wer_vs_data.png`` (final test WER against training hours per budget arm) and ``weight_change.png``
(mean relative weight change per encoder block for each transfer arm). Every number comes from the run.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from omegaconf import DictConfig

from asr_transfer.fileio import atomic_open
from asr_transfer.plotting import saved_figure
from asr_transfer.study.config import FULL_BUDGET


def _mean(values: list) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.fmean(present) if present and len(present) == len(values) else None


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _fmt_seeds(values: list, digits: int = 3) -> str:
    """Mean over seeds, with the sample standard deviation when there are several."""
    mean = _mean(values)
    if mean is None or len(values) < 2:
        return _fmt(mean, digits)
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def grouped(results) -> dict[tuple[float, str], list]:
    groups = defaultdict(list)
    for result in results:
        groups[(result.budget, result.arm)].append(result)
    return groups


def mean_curve(runs, metric: str = "dev_wer") -> tuple[list[int], list[float], list[tuple[float, float]]]:
    """A dev metric per step, mean over seeds and (lowest, highest) seed, at steps every seed validated."""
    by_step = defaultdict(list)
    for run in runs:
        for point in run.curve:
            if point.get(metric) is not None:
                by_step[point["step"]].append(point[metric])
    steps = sorted(step for step, values in by_step.items() if len(values) == len(runs))
    return steps, [statistics.fmean(by_step[s]) for s in steps], [(min(by_step[s]), max(by_step[s])) for s in steps]


def steps_to_target(runs) -> int | None:
    """Mean over seeds; None when any seed never reached the target."""
    return _mean([run.steps_to_target for run in runs])


def speedup(reference_runs, runs) -> str:
    """Reference steps / arm steps to the target; a lower bound when the reference never got there."""
    reference, own = steps_to_target(reference_runs), steps_to_target(runs)
    if own is None:
        return "not reached"
    if reference is None:
        return f"> {runs[0].steps / own:.1f}x"
    return f"{reference / own:.1f}x"


def plot_steps(cfg: DictConfig, groups, out_png: Path) -> None:
    """Dev WER and, where the runs logged it, dev CER against steps, one line per arm."""
    full = {arm: groups[(FULL_BUDGET, arm)] for arm in cfg.arms if (FULL_BUDGET, arm) in groups}
    metrics = ["dev_wer"]
    if any(point.get("dev_cer") is not None for runs in full.values() for run in runs for point in run.curve):
        metrics.append("dev_cer")
    with saved_figure(str(out_png), figsize=(6.5 * len(metrics), 4.5), ncols=len(metrics), squeeze=False) as (
        figure,
        axes_row,
    ):
        for axes, metric in zip(axes_row[0], metrics, strict=True):
            for arm, runs in full.items():
                steps, values, spread = mean_curve(runs, metric)
                (line,) = axes.plot(steps, values, marker="o", markersize=3, label=arm)
                if len(runs) > 1 and steps:
                    lows, highs = zip(*spread, strict=True)
                    axes.fill_between(steps, lows, highs, color=line.get_color(), alpha=0.15, linewidth=0)
            if metric == "dev_wer":
                axes.axhline(
                    float(cfg.target_wer), color="grey", linestyle="--", linewidth=1, label=f"target {cfg.target_wer}"
                )
            axes.set_xlabel("training step")
            axes.set_ylabel(metric.replace("_", " ").replace("wer", "WER").replace("cer", "CER"))
            axes.set_ylim(bottom=0)
            axes.grid(alpha=0.3)
            axes.legend(fontsize=8)
        seeds = f", mean of {len(cfg.seeds)} seeds (band: lowest to highest)" if len(cfg.seeds) > 1 else ""
        figure.suptitle(f"{cfg.name}: dev error against steps, full training set{seeds}", fontsize=10)


def plot_data(cfg: DictConfig, groups, budgets: dict, arms: list[str], out_png: Path, base_wer=None) -> None:
    from matplotlib.ticker import NullFormatter

    with saved_figure(str(out_png), figsize=(7, 4.5)) as (_, axes):
        for arm in arms:
            points = []
            for budget in sorted(budgets):
                wers = [run.test_wer for run in groups.get((budget, arm), [])]
                if wers and _mean(wers) is not None:
                    spread = statistics.stdev(wers) if len(wers) > 1 else 0.0
                    points.append((budgets[budget]["hours"] * 60, _mean(wers), spread))
            if points:
                minutes, wers, spreads = zip(*points, strict=True)
                axes.errorbar(minutes, wers, yerr=spreads if any(spreads) else None, marker="o", capsize=3, label=arm)
        if base_wer is not None:
            axes.axhline(base_wer, color="grey", linestyle=":", linewidth=1.2, label="base, no training")
        axes.set_xscale("log")
        # Tick the budgets themselves: log-scale default labels (3x10^0) read badly for 2 to 20 minutes.
        budget_minutes = [budgets[budget]["hours"] * 60 for budget in sorted(budgets)]
        axes.set_xticks(budget_minutes)
        axes.set_xticklabels([f"{minutes:.3g}" for minutes in budget_minutes])
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.set_xlabel("target training data (minutes, log scale)")
        axes.set_ylabel("test WER after the same step budget")
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3, which="both")
        spread = f", mean of {len(cfg.seeds)} seeds (bars: 1 sd)" if len(cfg.seeds) > 1 else ""
        axes.set_title(f"{cfg.name}: WER against training data{spread}", fontsize=10)
        axes.legend(fontsize=8)


def plot_weight_change(inspected: dict, out_png: Path) -> None:
    with saved_figure(str(out_png), figsize=(7.5, 4.2)) as (_, axes):
        for arm, found in inspected.items():
            blocks = list(found["blocks"])
            axes.plot(range(len(blocks)), list(found["blocks"].values()), marker="o", label=arm)
            axes.set_xticks(range(len(blocks)))
            axes.set_xticklabels(blocks, rotation=45, fontsize=8)
        axes.set_xlabel("block, input to output")
        axes.set_ylabel("mean ||W_tuned - W_base|| / ||W_base||")
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.set_title("weight change against the base, per block")
        axes.legend(fontsize=8)


def comparison_sentences(cfg: DictConfig, groups, budgets: dict) -> list[str]:
    sentences = []
    for comparison in cfg.comparisons:
        wins, rows = 0, []
        for budget in sorted(budgets):
            arm_runs, other_runs = groups.get((budget, comparison.arm)), groups.get((budget, comparison.against))
            if not arm_runs or not other_runs:
                continue
            arm_wer = _mean([run.test_wer for run in arm_runs])
            other_wer = _mean([run.test_wer for run in other_runs])
            if arm_wer is None or other_wer is None:
                continue
            wins += arm_wer < other_wer
            rows.append(f"{budget:.0%}: {arm_wer:.3f} vs {other_wer:.3f}")
        if not rows:
            continue
        verdict = (
            "helps at every budget"
            if wins == len(rows)
            else "does not help at any budget"
            if wins == 0
            else f"helps at {wins} of {len(rows)} budgets"
        )
        sentences.append(
            f"- **{comparison.name}** ({comparison.arm} against {comparison.against}) {verdict}: test WER "
            + "; ".join(rows)
            + "."
        )
    return sentences


def base_sentence(cfg: DictConfig, groups, budgets: dict, arms: list[str], base_wer: float) -> str | None:
    """Whether fine-tuning beats leaving the base alone, per (arm, budget): tiny budgets can make it worse."""
    cells = {}
    for arm in arms:
        for budget in sorted(budgets):
            wer = _mean([run.test_wer for run in groups.get((budget, arm), [])])
            if arm != cfg.reference_arm and wer is not None:
                cells[f"{arm} {budget:.0%}"] = wer
    if not cells:
        return None
    worse = [f"{cell} ({wer:.3f})" for cell, wer in cells.items() if wer >= base_wer]
    verdict = f"fine-tuning beats it in {len(cells) - len(worse)} of {len(cells)} (arm, budget) cells"
    if worse:
        verdict += "; it is worse at " + ", ".join(worse)
    return f"- **against the base with no training** (test WER {base_wer:.3f}): {verdict}."


def write_report(cfg: DictConfig, out: Path, results, budgets: dict, base_summary, inspected, command: str) -> None:
    groups = grouped(results)
    arms_at_budgets = [arm for arm in cfg.arms if sum(1 for budget in budgets if (budget, arm) in groups) > 1]
    plot_steps(cfg, groups, out / "wer_vs_steps.png")
    if len(budgets) > 1:
        base_wer = base_summary["wer"] if base_summary else None
        plot_data(cfg, groups, budgets, arms_at_budgets, out / "wer_vs_data.png", base_wer)
    if inspected:
        plot_weight_change(inspected, out / "weight_change.png")

    full = budgets[FULL_BUDGET]
    reference = groups.get((FULL_BUDGET, cfg.reference_arm), [])
    lines = [f"# Transfer study: {cfg.name}", ""]
    if cfg.description:
        lines += [str(cfg.description).strip(), ""]
    lines += [
        f"Made by `{command}`." if command else "",
        "",
        f"Same step budget ({cfg.steps} steps, dev WER every {cfg.val_every}), seeds {list(cfg.seeds)}, fine-tuning "
        f"config `{cfg.finetune_config}`, base `{cfg.base.nemo or cfg.base.pretrained}`. Full training set: "
        f"{full['utterances']} utterances, {full['hours'] * 60:.1f} minutes. Target dev WER for the speed "
        f"columns: {cfg.target_wer}."
        + (" WERs are means over the seeds, ± their sample standard deviation." if len(cfg.seeds) > 1 else ""),
        "",
    ]
    if base_summary:
        lines += [
            f"The base before any training, on the target test set: WER {_fmt(base_summary['wer'])}, "
            f"CER {_fmt(base_summary['cer'])}.",
            "",
        ]
    lines += [
        "## Arms on the full training set",
        "",
        f"| arm | test WER | test CER | best dev WER | best dev CER | steps to dev WER {cfg.target_wer} | "
        f"seconds to it | speed-up vs {cfg.reference_arm} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm in cfg.arms:
        runs = groups.get((FULL_BUDGET, arm))
        if not runs:
            continue
        lines.append(
            f"| {arm} | {_fmt_seeds([r.test_wer for r in runs])} | {_fmt_seeds([r.test_cer for r in runs])} | "
            f"{_fmt_seeds([r.best_dev_wer for r in runs])} | {_fmt_seeds([r.best_dev_cer for r in runs])} | "
            f"{_fmt(steps_to_target(runs), 0)} | "
            f"{_fmt(_mean([r.seconds_to_target for r in runs]), 0)} | "
            f"{speedup(reference, runs) if reference else 'n/a'} |"
        )
    lines += ["", "![dev WER and CER against steps](wer_vs_steps.png)", ""]
    if len(budgets) > 1:
        header = "| training data | " + " | ".join(arms_at_budgets) + " |"
        lines += ["## Data budgets (test WER)", "", header, "|---" * (len(arms_at_budgets) + 1) + "|"]
        for budget in sorted(budgets):
            info = budgets[budget]
            cells = [_fmt_seeds([r.test_wer for r in groups.get((budget, arm), [])]) for arm in arms_at_budgets]
            lines.append(
                f"| {budget:.0%} ({info['utterances']} utt., {info['hours'] * 60:.1f} min) | "
                + " | ".join(cells)
                + " |"
            )
        lines += ["", f"Steps to dev WER {cfg.target_wer}, and the speed-up against {cfg.reference_arm}:", ""]
        lines += ["| training data | " + " | ".join(arms_at_budgets) + " |", "|---" * (len(arms_at_budgets) + 1) + "|"]
        for budget in sorted(budgets):
            reference_runs = groups.get((budget, cfg.reference_arm), [])
            cells = []
            for arm in arms_at_budgets:
                runs = groups.get((budget, arm), [])
                ratio = speedup(reference_runs, runs) if reference_runs and runs and arm != cfg.reference_arm else ""
                cells.append(f"{_fmt(steps_to_target(runs), 0)} {f'({ratio})' if ratio else ''}".strip())
            lines.append(f"| {budget:.0%} | " + " | ".join(cells) + " |")
        lines += ["", "![WER against training data](wer_vs_data.png)", ""]
    sentences = comparison_sentences(cfg, groups, budgets)
    if base_summary:
        sentences.append(base_sentence(cfg, groups, budgets, list(cfg.arms), base_summary["wer"]))
    sentences = [sentence for sentence in sentences if sentence]
    if sentences:
        lines += ["## Findings", "", *sentences, ""]
    if inspected:
        lines += ["## Which layers moved (Kunze et al.'s introspection)", ""]
        lines += [f"- **{arm}**: {found['sentence']}" for arm, found in inspected.items()]
        lines += ["", "![weight change per block](weight_change.png)", ""]
        lines += ["Per layer: " + ", ".join(f"[{arm}](inspect/{arm}.png)" for arm in inspected) + "."]
        first = next(iter(inspected))
        lines += ["", f"![{first}: weight change per layer](inspect/{first}.png)", ""]
    lines += [
        "Raw numbers: `results.csv` (one row per run), `curves.csv` (dev WER and CER at every validation), "
        "`results.json`.",
        "",
    ]
    with atomic_open(out / "RESULTS.md") as handle:
        handle.write("\n".join(lines))
