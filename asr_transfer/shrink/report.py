"""The report of ``asr-transfer shrink``: every finished run in OUT_DIR/results/, side by side.

In: ``results/*.json`` (one per fine-tuning run: arm, layers, seed, parameters, step-1 and step-2 steps
and seconds, test WER/CER, dev curve) and ``results/teacher.json``. Out: ``results.csv`` (one row per
run), ``RESULTS.md`` (mean +- sd over seeds per system and size; steps and seconds to reach the scratch
student's best dev value, with and without step 1's cost), ``frontier.png`` (test error against
parameters), ``dev_curves.png`` (dev error against all steps taken, step 1's included) and
``student_<layers>.nemo``: per size, the two-step student with the best dev value.
"""

from __future__ import annotations

import csv
import json
import shutil
import statistics
from collections import defaultdict
from pathlib import Path

from asr_transfer.curves import Line, Panel, first_reaching, mean_curve, plot_curves, values
from asr_transfer.fileio import atomic_open, atomic_path
from asr_transfer.languages import primary_metric
from asr_transfer.plotting import saved_figure

RUN_COLUMNS = (
    "arm", "layers", "seed", "parameters", "step1_steps", "step1_seconds", "step2_steps", "step2_seconds",
    "best_dev_wer", "best_dev_cer", "test_wer", "test_cer", "model",
)  # fmt: skip


def label(arm: str) -> str:
    if arm == "teacher":
        return "teacher"
    if arm == "scratch":
        return "scratch (same total steps)"
    if arm == "scratch-3x":
        return "scratch (3x step-2 steps)"
    if arm == "kd":
        return "KD (CTC + KL to the teacher)"
    _, mode, init, loss = arm.split("_")
    runs = "one step-1 run" if mode == "onerun" else "step 1 per student"
    return f"two-step ({runs}, {init} init, {loss.replace('-', '+')})"


def load_results(out: Path) -> tuple[dict | None, list[dict]]:
    teacher, runs = None, []
    for path in sorted((out / "results").glob("*.json")):
        with open(path, encoding="utf-8") as handle:
            result = json.load(handle)
        if result["arm"] == "teacher":
            teacher = result
            continue
        for metric in ("wer", "cer"):
            values = [point[f"dev_{metric}"] for point in result["curve"] if point.get(f"dev_{metric}") is not None]
            result[f"best_dev_{metric}"] = min(values, default=None)
        runs.append(result)
    return teacher, runs


def mean_sd(values: list, digits: int = 3) -> str:
    values = [value for value in values if value is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def steps_to_scratch_best(runs: list[dict], metric: str) -> list[dict]:
    """For every run but scratch: where its dev curve first reaches its scratch twin's best dev value (steps
    and seconds, without and with step 1's cost). Steps, not a ratio: the report sets them beside what
    scratch took."""
    scratch = {(run["layers"], run["seed"]): run for run in runs if run["arm"] == "scratch"}
    found = []
    for run in runs:
        twin = scratch.get((run["layers"], run["seed"]))
        if run["arm"] == "scratch" or twin is None:
            continue
        reached = first_reaching(run["curve"], metric, twin[f"best_dev_{metric}"])
        found.append(
            {
                "arm": run["arm"],
                "layers": run["layers"],
                "seed": run["seed"],
                "scratch_steps": twin["step1_steps"] + twin["step2_steps"],
                "scratch_seconds": twin["step2_seconds"],
                "steps": reached["step"] if reached else None,
                "seconds": reached["seconds"] if reached else None,
                "steps_with_step1": reached["step"] + run["step1_steps"] if reached else None,
                "seconds_with_step1": reached["seconds"] + run["step1_seconds"] if reached else None,
            }
        )
    return found


def grouped(rows: list[dict]) -> dict[tuple[str, int], list[dict]]:
    groups = defaultdict(list)
    for row in rows:
        groups[(row["arm"], row["layers"])].append(row)
    return dict(sorted(groups.items(), key=lambda item: (-item[0][1], item[0][0])))


def systems_table(teacher: dict | None, runs: list[dict], metric: str) -> list[str]:
    lines = [
        "| system | layers | parameters | steps (step 1 + step 2) | seconds | test WER | test CER "
        f"| best dev {metric.upper()} | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    if teacher:
        lines.append(
            f"| teacher | {teacher['layers']} | {teacher['parameters']:,} | | | {mean_sd([teacher['test_wer']])} | "
            f"{mean_sd([teacher['test_cer']])} | {mean_sd([teacher[f'dev_{metric}']])} | |"
        )
    for (arm, layers), group in grouped(runs).items():
        first = group[0]
        seconds = [run["step1_seconds"] + (run["step2_seconds"] or 0) for run in group]
        lines.append(
            f"| {label(arm)} | {layers} | {first['parameters']:,} | {first['step1_steps']} + {first['step2_steps']} | "
            f"{statistics.mean(seconds):.0f} | {mean_sd([run['test_wer'] for run in group])} | "
            f"{mean_sd([run['test_cer'] for run in group])} | "
            f"{mean_sd([run[f'best_dev_{metric}'] for run in group])} | {len(group)} |"
        )
    return lines


def speed_table(found: list[dict]) -> list[str]:
    lines = [
        "| system | layers | reached | step-2 steps | with step 1 | seconds | with step 1 | scratch took (steps, s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (arm, layers), group in grouped(found).items():
        reached = [row for row in group if row["steps"] is not None]
        lines.append(
            f"| {label(arm)} | {layers} | {len(reached)}/{len(group)} | {mean_sd([r['steps'] for r in reached], 0)} | "
            f"{mean_sd([r['steps_with_step1'] for r in reached], 0)} | {mean_sd([r['seconds'] for r in reached], 0)} | "
            f"{mean_sd([r['seconds_with_step1'] for r in reached], 0)} | "
            f"{group[0]['scratch_steps']}, {mean_sd([r['scratch_seconds'] for r in group], 0)} |"
        )
    return lines


def plot_frontier(teacher: dict | None, runs: list[dict], metric: str, out_png: Path) -> None:
    key = f"test_{metric}" if any(run.get(f"test_{metric}") is not None for run in runs) else f"best_dev_{metric}"
    with saved_figure(str(out_png), figsize=(7, 4.5)) as (_, axes):
        by_arm = defaultdict(list)
        for (arm, _), group in grouped(runs).items():
            values = [run[key] for run in group if run[key] is not None]
            if values:
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                by_arm[arm].append((group[0]["parameters"], statistics.mean(values), sd))
        for arm, points in sorted(by_arm.items()):
            points.sort()
            axes.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points],
                          marker="o", capsize=3, label=label(arm))  # fmt: skip
        teacher_value = teacher.get(key.replace("best_dev", "dev")) if teacher else None
        if teacher_value is not None:
            axes.scatter([teacher["parameters"]], [teacher_value], marker="*", s=160, color="black", label="teacher")
        axes.set_xscale("log")
        axes.set_xlabel("parameters")
        axes.set_ylabel(key.replace("_", " ").replace("best dev", "best dev").upper())
        axes.set_title("size against error: students and the teacher (mean ± sd over seeds)")
        axes.legend(fontsize=7)


def plot_sizes(runs: list[dict], metric: str, out_png: Path) -> None:
    """One panel per student size: each system's dev curve, mean over seeds, against all steps taken (a
    two-step run's curve shifted by its step-1 steps)."""
    panels = []
    for size in sorted({run["layers"] for run in runs}, reverse=True):
        lines = []
        for (arm, layers), group in grouped(runs).items():
            if layers == size:
                shifted = [[(step + run["step1_steps"], value) for step, value in values(run["curve"], metric)]
                           for run in group]  # fmt: skip
                steps, means, _ = mean_curve(shifted, every_curve=False)
                lines.append(Line(label(arm), steps, means, marker="."))
        panels.append(Panel(lines, xlabel="steps, step 1's included", ylabel=f"dev {metric.upper()} (mean over seeds)",
                            title=f"{size}-layer students", ylim=None, grid=False, legend_size=6))  # fmt: skip
    plot_curves(out_png, panels, panel_size=(4.5, 4))


def write_csv(runs: list[dict], teacher: dict | None, out: Path) -> None:
    with atomic_open(out / "results.csv") as handle:
        writer = csv.DictWriter(handle, fieldnames=RUN_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        if teacher:
            writer.writerow(teacher | {"best_dev_wer": teacher["dev_wer"], "best_dev_cer": teacher["dev_cer"]})
        writer.writerows(runs)


def publish_students(runs: list[dict], metric: str, out: Path) -> dict[int, str]:
    """Per size, the two-step student with the best dev value (dev only picks), as student_<layers>.nemo."""
    chosen = {}
    for run in sorted(runs, key=lambda run: run[f"best_dev_{metric}"]):
        if run["arm"].startswith("twostep") and run["layers"] not in chosen:
            chosen[run["layers"]] = run
    for size, run in chosen.items():
        with atomic_path(out / f"student_{size}.nemo") as tmp:
            shutil.copyfile(run["model"], tmp)
    return {size: f"{run['arm']} seed {run['seed']}" for size, run in chosen.items()}


def write_report(out: Path, lang: str | None) -> Path:
    metric = primary_metric(lang)
    teacher, runs = load_results(out)
    write_csv(runs, teacher, out)
    plot_frontier(teacher, runs, metric, out / "frontier.png")
    plot_sizes(runs, metric, out / "dev_curves.png")
    published = publish_students(runs, metric, out)
    lines = [
        "# Several small models from one large one",
        "",
        f"Primary metric: {metric.upper()} (best model and checkpoints chosen on dev only). Mean ± sd over seeds.",
        "",
        *systems_table(teacher, runs, metric),
        "",
        f"## Steps and seconds to reach the scratch student's best dev {metric.upper()}",
        "",
        "Step-2 steps and seconds until the dev curve first reaches its scratch twin's (same size and seed) best; "
        "'with step 1' adds step 1's steps and wall time (teacher forward passes included; a shared step-1 run "
        "is counted in full for every student cut from it).",
        "",
        *speed_table(steps_to_scratch_best(runs, metric)),
        "",
        "![test error against parameters](frontier.png)",
        "",
        "![dev curves](dev_curves.png)",
        "",
        "Published students: "
        + (", ".join(f"student_{s}.nemo = {what}" for s, what in sorted(published.items())) or "none"),
        "",
    ]
    commands = out / "commands.txt"
    if commands.is_file():
        lines += ["Made by (every shrink run into this folder):", ""]
        lines += [f"    {command}" for command in commands.read_text(encoding="utf-8").splitlines()] + [""]
    with atomic_open(out / "RESULTS.md") as handle:
        handle.write("\n".join(lines))
    return out / "RESULTS.md"
