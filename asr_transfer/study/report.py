"""RESULTS.md and plots of a transfer study.

In: the study config, its run results (``grid.RunResult``), the data budgets, the base's WER and CER on
the target before training and the weight introspection. Out, in the study folder: ``RESULTS.md``,
``wer_vs_steps.png`` (dev WER and CER against steps per arm at the full budget, the target dashed),
``wer_vs_data.png`` (final test value against training hours per budget arm) and ``weight_change.png``
(mean relative weight change per encoder block for each transfer arm). Every number comes from the run.
The target, the steps to it, the data budgets and the findings are in the language's primary metric
(``primary_metric(cfg.lang)``: WER, CER for Cantonese); curves, speed-ups and plots of curves come from
``asr_transfer.curves``.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from omegaconf import DictConfig

from asr_transfer.curves import Line, Panel, mean_curve, plot_curves, speed_up
from asr_transfer.curves import values as curve_values
from asr_transfer.fileio import atomic_open
from asr_transfer.languages import primary_metric
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


def test_values(runs, metric: str) -> list:
    """Each run's test value of ``metric`` (``wer`` or ``cer``)."""
    return [getattr(run, f"test_{metric}") for run in runs]


def steps_to_target(runs) -> int | None:
    """Mean over seeds; None when any seed never reached the target."""
    return _mean([run.steps_to_target for run in runs])


def speedup(reference_runs, runs) -> str:
    """``asr_transfer.curves.speed_up`` of the seeds' mean steps to the target: a lower bound (``> ...``)
    when the reference never got there within its step budget."""
    found = speed_up(steps_to_target(reference_runs), steps_to_target(runs), reference_budget=runs[0].steps)
    if found.ratio is None:
        return "not reached"
    return f"> {found.ratio:.1f}x" if found.lower_bound else f"{found.ratio:.1f}x"


def _metric_label(metric: str) -> str:
    return f"dev {metric.upper()}"


def plot_steps(cfg: DictConfig, groups, out_png: Path, metric: str) -> None:
    """Dev WER and, where the runs logged it, dev CER against steps, one line per arm (mean over seeds,
    lowest to highest seed shaded); the target dashed on the panel of the language's ``metric``."""
    full = {arm: groups[(FULL_BUDGET, arm)] for arm in cfg.arms if (FULL_BUDGET, arm) in groups}
    shown = ["wer"]
    if any(point.get("dev_cer") is not None for runs in full.values() for run in runs for point in run.curve):
        shown.append("cer")
    panels = []
    for panel_metric in shown:
        lines = []
        for arm, runs in full.items():
            steps, means, spread = mean_curve([curve_values(run.curve, panel_metric) for run in runs])
            band = tuple(list(side) for side in zip(*spread, strict=True)) if len(runs) > 1 and steps else None
            lines.append(Line(arm, steps, means, markersize=3, band=band))
        target = (float(cfg.target), f"target {cfg.target}") if panel_metric == metric else None
        panels.append(Panel(lines, ylabel=_metric_label(panel_metric), legend_size=8, hline=target))
    seeds = f", mean of {len(cfg.seeds)} seeds (band: lowest to highest)" if len(cfg.seeds) > 1 else ""
    title = f"{cfg.name}: dev error against steps, full training set{seeds}"
    plot_curves(out_png, panels, panel_size=(6.5, 4.5), suptitle=(title, 10))


def plot_data(cfg: DictConfig, groups, budgets: dict, arms: list[str], out_png: Path, base_value=None,
              metric: str = "wer") -> None:  # fmt: skip
    """Final test ``metric`` against training minutes (log scale), one line per arm, the base dotted."""
    from matplotlib.ticker import NullFormatter

    name = metric.upper()
    with saved_figure(str(out_png), figsize=(7, 4.5)) as (_, axes):
        for arm in arms:
            points = []
            for budget in sorted(budgets):
                found = test_values(groups.get((budget, arm), []), metric)
                if found and _mean(found) is not None:
                    spread = statistics.stdev(found) if len(found) > 1 else 0.0
                    points.append((budgets[budget]["hours"] * 60, _mean(found), spread))
            if points:
                minutes, means, spreads = zip(*points, strict=True)
                axes.errorbar(minutes, means, yerr=spreads if any(spreads) else None, marker="o", capsize=3, label=arm)
        if base_value is not None:
            axes.axhline(base_value, color="grey", linestyle=":", linewidth=1.2, label="base, no training")
        axes.set_xscale("log")
        # Tick the budgets themselves: log-scale default labels (3x10^0) read badly for 2 to 20 minutes.
        budget_minutes = [budgets[budget]["hours"] * 60 for budget in sorted(budgets)]
        axes.set_xticks(budget_minutes)
        axes.set_xticklabels([f"{minutes:.3g}" for minutes in budget_minutes])
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.set_xlabel("target training data (minutes, log scale)")
        axes.set_ylabel(f"test {name} after the same step budget")
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3, which="both")
        spread = f", mean of {len(cfg.seeds)} seeds (bars: 1 sd)" if len(cfg.seeds) > 1 else ""
        axes.set_title(f"{cfg.name}: {name} against training data{spread}", fontsize=10)
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


def comparison_sentences(cfg: DictConfig, groups, budgets: dict, metric: str = "wer") -> list[str]:
    sentences = []
    for comparison in cfg.comparisons:
        wins, rows = 0, []
        for budget in sorted(budgets):
            arm_runs, other_runs = groups.get((budget, comparison.arm)), groups.get((budget, comparison.against))
            if not arm_runs or not other_runs:
                continue
            arm_value = _mean(test_values(arm_runs, metric))
            other_value = _mean(test_values(other_runs, metric))
            if arm_value is None or other_value is None:
                continue
            wins += arm_value < other_value
            rows.append(f"{budget:.0%}: {arm_value:.3f} vs {other_value:.3f}")
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
            f"- **{comparison.name}** ({comparison.arm} against {comparison.against}) {verdict}: test "
            f"{metric.upper()} " + "; ".join(rows) + "."
        )
    return sentences


def base_sentence(cfg: DictConfig, groups, budgets: dict, arms: list[str], base_value: float, metric: str = "wer"):
    """Whether fine-tuning beats leaving the base alone, per (arm, budget): tiny budgets can make it worse.
    None when no arm but the reference has a result."""
    cells = {}
    for arm in arms:
        for budget in sorted(budgets):
            value = _mean(test_values(groups.get((budget, arm), []), metric))
            if arm != cfg.reference_arm and value is not None:
                cells[f"{arm} {budget:.0%}"] = value
    if not cells:
        return None
    worse = [f"{cell} ({value:.3f})" for cell, value in cells.items() if value >= base_value]
    verdict = f"fine-tuning beats it in {len(cells) - len(worse)} of {len(cells)} (arm, budget) cells"
    if worse:
        verdict += "; it is worse at " + ", ".join(worse)
    return f"- **against the base with no training** (test {metric.upper()} {base_value:.3f}): {verdict}."


def budget_arms_of(cfg: DictConfig, groups, budgets: dict) -> list[str]:
    """The arms that ran at more than one data budget."""
    return [arm for arm in cfg.arms if sum(1 for budget in budgets if (budget, arm) in groups) > 1]


def write_plots(cfg: DictConfig, out: Path, groups, budgets: dict, base_summary, inspected, metric: str) -> None:
    plot_steps(cfg, groups, out / "wer_vs_steps.png", metric)
    if len(budgets) > 1:
        base_value = base_summary[metric] if base_summary else None
        plot_data(cfg, groups, budgets, budget_arms_of(cfg, groups, budgets), out / "wer_vs_data.png", base_value,
                  metric)  # fmt: skip
    if inspected:
        plot_weight_change(inspected, out / "weight_change.png")


def header_lines(cfg: DictConfig, budgets: dict, base_summary, command: str, metric: str) -> list[str]:
    full = budgets[FULL_BUDGET]
    lines = [f"# Transfer study: {cfg.name}", ""]
    if cfg.description:
        lines += [str(cfg.description).strip(), ""]
    lines += [
        f"Made by `{command}`." if command else "",
        "",
        f"Same step budget ({cfg.steps} steps, dev WER every {cfg.val_every}"
        + (f"; a run ends after {cfg.patience} validations without a new best" if cfg.get("patience") else "")
        + f"), seeds {list(cfg.seeds)}, fine-tuning "
        f"config `{cfg.finetune_config}`, base `{cfg.base.nemo or cfg.base.pretrained}`. Full training set: "
        f"{full['utterances']} utterances, {full['hours'] * 60:.1f} minutes. Target {_metric_label(metric)} for "
        f"the speed columns: {cfg.target}."
        + (" WERs are means over the seeds, ± their sample standard deviation." if len(cfg.seeds) > 1 else ""),
        "",
    ]
    if base_summary:
        lines += [
            f"The base before any training, on the target test set: WER {_fmt(base_summary['wer'])}, "
            f"CER {_fmt(base_summary['cer'])}.",
            "",
        ]
    return lines


def arms_table(cfg: DictConfig, groups, metric: str) -> list[str]:
    """Every arm on the full training set: test and best dev values, steps and seconds to the target."""
    reference = groups.get((FULL_BUDGET, cfg.reference_arm), [])
    lines = [
        "## Arms on the full training set",
        "",
        f"| arm | test WER | test CER | best dev WER | best dev CER | steps to {_metric_label(metric)} {cfg.target} "
        f"| seconds to it | speed-up vs {cfg.reference_arm} |",
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
    return [*lines, "", "![dev WER and CER against steps](wer_vs_steps.png)", ""]


def budget_tables(cfg: DictConfig, groups, budgets: dict, metric: str) -> list[str]:
    """Test values per data budget and arm, then steps to the target and the speed-up per budget."""
    if len(budgets) <= 1:
        return []
    arms = budget_arms_of(cfg, groups, budgets)
    columns = ["| training data | " + " | ".join(arms) + " |", "|---" * (len(arms) + 1) + "|"]
    lines = [f"## Data budgets (test {metric.upper()})", "", *columns]
    for budget in sorted(budgets):
        info = budgets[budget]
        cells = [_fmt_seeds(test_values(groups.get((budget, arm), []), metric)) for arm in arms]
        lines.append(
            f"| {budget:.0%} ({info['utterances']} utt., {info['hours'] * 60:.1f} min) | " + " | ".join(cells) + " |"
        )
    lines += ["", f"Steps to {_metric_label(metric)} {cfg.target}, and the speed-up against {cfg.reference_arm}:", ""]
    lines += columns
    for budget in sorted(budgets):
        reference_runs = groups.get((budget, cfg.reference_arm), [])
        cells = []
        for arm in arms:
            runs = groups.get((budget, arm), [])
            ratio = speedup(reference_runs, runs) if reference_runs and runs and arm != cfg.reference_arm else ""
            cells.append(f"{_fmt(steps_to_target(runs), 0)} {f'({ratio})' if ratio else ''}".strip())
        lines.append(f"| {budget:.0%} | " + " | ".join(cells) + " |")
    return [*lines, "", "![WER against training data](wer_vs_data.png)", ""]


def findings_lines(cfg: DictConfig, groups, budgets: dict, base_summary, metric: str) -> list[str]:
    sentences = comparison_sentences(cfg, groups, budgets, metric)
    if base_summary:
        sentences.append(base_sentence(cfg, groups, budgets, list(cfg.arms), base_summary[metric], metric))
    sentences = [sentence for sentence in sentences if sentence]
    return ["## Findings", "", *sentences, ""] if sentences else []


def introspection_lines(inspected: dict) -> list[str]:
    if not inspected:
        return []
    lines = ["## Which layers moved (Kunze et al.'s introspection)", ""]
    lines += [f"- **{arm}**: {found['sentence']}" for arm, found in inspected.items()]
    lines += ["", "![weight change per block](weight_change.png)", ""]
    lines += ["Per layer: " + ", ".join(f"[{arm}](inspect/{arm}.png)" for arm in inspected) + "."]
    first = next(iter(inspected))
    return [*lines, "", f"![{first}: weight change per layer](inspect/{first}.png)", ""]


def write_report(cfg: DictConfig, out: Path, results, budgets: dict, base_summary, inspected, command: str) -> None:
    """RESULTS.md and the plots, in the language's primary metric (``primary_metric(cfg.lang)``): the
    target, the steps to it, the data-budget table and the findings."""
    metric = primary_metric(cfg.lang)
    groups = grouped(results)
    write_plots(cfg, out, groups, budgets, base_summary, inspected, metric)
    lines = [
        *header_lines(cfg, budgets, base_summary, command, metric),
        *arms_table(cfg, groups, metric),
        *budget_tables(cfg, groups, budgets, metric),
        *findings_lines(cfg, groups, budgets, base_summary, metric),
        *introspection_lines(inspected),
        "Raw numbers: `results.csv` (one row per run), `curves.csv` (dev WER and CER at every validation), "
        "`results.json`.",
        "",
    ]
    with atomic_open(out / "RESULTS.md") as handle:
        handle.write("\n".join(lines))
