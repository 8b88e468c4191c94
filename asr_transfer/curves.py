"""Dev curves and what every report reads from them: the one toolkit of the demo, study, languages and
shrink reports.

In: a fine-tuning run folder (its ``curves/metrics.csv``, ``asr_transfer.layout.metrics_path``), a study's
``curves.csv`` or curves already in memory, and evaluation summaries (``summary.json``). Out:

- points: ``{"step": int, "seconds": float, "dev_wer": float, "dev_cer": float | None}`` dicts in step
  order (``read_points``, ``read_study_points``); a metric is ``"wer"`` or ``"cer"`` and names the key
  ``dev_<metric>``;
- the first point reaching a value (``first_reaching``), the best point (``best_point``), whether a curve
  has stopped improving (``settled``), the mean of several seeds' curves (``mean_curve``);
- the speed-up (``speed_up``), one definition for every report:
  ``speed-up = reference steps to reach a target / arm steps to reach it``;
- a PNG of curves against steps, one panel per ``Panel`` (``plot_curves``).
"""

from __future__ import annotations

import csv
import json
import os
import statistics
from collections import defaultdict
from dataclasses import dataclass

from asr_transfer.errors import InputError
from asr_transfer.layout import metrics_path
from asr_transfer.plotting import saved_figure

METRICS = ("wer", "cer")


def dev_key(metric: str) -> str:
    """The point key of a metric: ``wer`` -> ``dev_wer``."""
    return f"dev_{metric}"


def _value(text: str | None) -> float | None:
    return float(text) if text else None


def read_points(run_dir: str | os.PathLike) -> list[dict]:
    """The validations of a fine-tuning run, in step order (``dev_cer`` None in curves written before it was
    logged). Raises InputError when the run never validated."""
    path = metrics_path(run_dir)
    if not path.is_file():
        raise InputError(
            f"{run_dir} holds no {path.relative_to(run_dir)}; give a run folder that validated at least once"
        )
    with open(path, encoding="utf-8") as handle:
        return [
            {
                "step": int(float(row["step"])),
                "seconds": float(row["seconds"]),
                "dev_wer": float(row["val_wer"]),
                "dev_cer": _value(row.get("val_cer")),
            }
            for row in csv.DictReader(handle)
            if row["val_wer"]
        ]


def read_study_points(path: str | os.PathLike, budget: float, arm: str, seed: int) -> list[dict]:
    """One run's points from a study's ``curves.csv`` (columns budget, arm, seed, step, seconds, dev_wer,
    dev_cer), picked by its budget (a fraction), arm and seed."""
    with open(path, encoding="utf-8") as handle:
        return [
            {
                "step": int(row["step"]),
                "seconds": _value(row.get("seconds")),
                **{dev_key(metric): _value(row[dev_key(metric)]) for metric in METRICS},
            }
            for row in csv.DictReader(handle)
            if float(row["budget"]) == budget and row["arm"] == arm and int(row["seed"]) == seed
        ]


def load_summary(path: str | os.PathLike) -> dict | None:
    """An evaluation's (or any step's) ``summary.json``; None when it does not exist yet."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def values(points: list[dict], metric: str) -> list[tuple[int, float]]:
    """``(step, value)`` of every point that has the metric."""
    key = dev_key(metric)
    return [(point["step"], point[key]) for point in points if point.get(key) is not None]


def first_reaching(points: list[dict], metric: str, target: float) -> dict | None:
    """The first point whose dev value of ``metric`` is at or below ``target`` (error rates: lower is
    better); None when the curve never gets there."""
    key = dev_key(metric)
    return next((point for point in points if point.get(key) is not None and point[key] <= target), None)


def best_point(points: list[dict], metric: str) -> dict | None:
    """The first point with the lowest dev value of ``metric``; None for a curve without that metric."""
    present = [point for point in points if point.get(dev_key(metric)) is not None]
    return min(present, key=lambda point: point[dev_key(metric)], default=None)


def settled(points: list[dict], metric: str, patience: int) -> bool:
    """Whether a curve has stopped improving: none of its last ``patience`` validations is below the best
    before them (a tie is no new best, as for Lightning's EarlyStopping with min_delta 0)."""
    found = values(points, metric)
    if len(found) <= patience:
        return False
    best_before = min(value for _, value in found[:-patience])
    return all(value >= best_before for _, value in found[-patience:])


def mean_curve(
    curves: list[list[tuple[int, float]]], every_curve: bool = True
) -> tuple[list[int], list[float], list[tuple[float, float]]]:
    """Several seeds' ``(step, value)`` curves -> steps, the mean value at each and its (lowest, highest).

    ``every_curve``: keep only the steps every curve has (a mean of the same seeds at every step); else
    every step any curve has, averaged over the curves that have it."""
    by_step = defaultdict(list)
    for curve in curves:
        for step, value in curve:
            by_step[step].append(value)
    steps = sorted(step for step, found in by_step.items() if not every_curve or len(found) == len(curves))
    return (
        steps,
        [statistics.fmean(by_step[step]) for step in steps],
        [(min(by_step[step]), max(by_step[step])) for step in steps],
    )


@dataclass(frozen=True)
class SpeedUp:
    """``ratio`` = reference steps to the target / arm steps to it; None when the arm never reached the
    target. ``lower_bound``: the true ratio is at least ``ratio``, because the reference did not reach the
    target within its budget, or had not stopped improving."""

    ratio: float | None
    lower_bound: bool = False


def speed_up(
    reference_steps: float | None,
    steps: float | None,
    reference_budget: float | None = None,
    reference_settled: bool = True,
) -> SpeedUp:
    """How many times fewer steps the arm needed than the reference to reach the same target.

    ``reference_steps``: the reference's steps to the target, None when it never reached it, in which case
    its whole step budget ``reference_budget`` stands in and the ratio is a lower bound (None without a
    budget). ``reference_settled=False`` (the reference was still improving) also makes it a lower bound.
    ``steps``: the arm's steps to the target; None or 0 when it never reached it."""
    if not steps:
        return SpeedUp(None)
    if reference_steps is None:
        return SpeedUp(reference_budget / steps if reference_budget else None, lower_bound=True)
    return SpeedUp(reference_steps / steps, lower_bound=not reference_settled)


@dataclass
class Line:
    """One curve of a panel. ``fmt``: a matplotlib format string such as ``--``; ``band``: (lows, highs)
    shaded around the line, one pair per step."""

    label: str
    steps: list
    values: list
    fmt: str | None = None
    marker: str = "o"
    markersize: float | None = None
    band: tuple[list, list] | None = None


@dataclass
class Panel:
    """One axes of ``plot_curves``. ``ylim``: (bottom, top), either None to leave it to matplotlib;
    ``hline``: (value, label) of a dashed grey target line."""

    lines: list[Line]
    xlabel: str = "training step"
    ylabel: str = "dev WER"
    title: str = ""
    title_size: float | None = None
    ylim: tuple[float | None, float | None] | None = (0, None)
    grid: bool = True
    legend_size: float | None = None
    hline: tuple[float, str] | None = None


def plot_curves(out_png: str | os.PathLike, panels: list[Panel], panel_size: tuple[float, float], suptitle=None):
    """Curves against steps, one panel per ``Panel`` side by side, written to ``out_png``. ``panel_size``:
    (width, height) in inches of one panel; ``suptitle``: (text, fontsize) over all of them."""
    width, height = panel_size
    with saved_figure(str(out_png), ncols=len(panels), figsize=(width * len(panels), height), squeeze=False) as (
        figure,
        axes_row,
    ):
        for axes, panel in zip(axes_row[0], panels, strict=True):
            _draw(axes, panel)
        if suptitle:
            text, size = suptitle
            figure.suptitle(text, fontsize=size)


def _draw(axes, panel: Panel) -> None:
    for line in panel.lines:
        style = {"marker": line.marker, "label": line.label}
        if line.markersize is not None:
            style["markersize"] = line.markersize
        (drawn,) = axes.plot(line.steps, line.values, *([line.fmt] if line.fmt else []), **style)
        if line.band is not None and line.steps:
            axes.fill_between(line.steps, *line.band, color=drawn.get_color(), alpha=0.15, linewidth=0)
    if panel.hline is not None:
        value, label = panel.hline
        axes.axhline(value, color="grey", linestyle="--", linewidth=1, label=label)
    axes.set_xlabel(panel.xlabel)
    axes.set_ylabel(panel.ylabel)
    if panel.ylim is not None:
        axes.set_ylim(*panel.ylim)
    if panel.grid:
        axes.grid(alpha=0.3)
    if panel.title:
        axes.set_title(panel.title, **({"fontsize": panel.title_size} if panel.title_size else {}))
    axes.legend(**({"fontsize": panel.legend_size} if panel.legend_size else {}))
