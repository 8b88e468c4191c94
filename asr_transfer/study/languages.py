"""``asr-transfer report languages --out DIR STUDY_DIR ...``: the per-language table of transfer against
scratch (the synthetic analogue of Huang et al.'s table), from finished two-arm studies.

In: study output folders (``results.json`` and ``study_config.yaml`` of ``asr-transfer study``), each with
a ``transfer`` arm, a ``scratch`` arm unless it is a base-size study (a second base's transfer runs,
compared with the first base's), and one or more seeds. Out: ``DIR/RESULTS.md`` (test WER and CER per
language and base, mean and sd over seeds; the speed-up per seed under the study's protocol and whether it
is a measurement or a lower bound; what base size did), ``DIR/results.csv`` (a row per study, arm and
seed) and ``DIR/dev_curves.png`` (the seeds' mean dev curve per arm, the band their range).

The speed-up protocol (README "Transfer study"): both arms on the same schedule length (the study's
``steps``), each ended by early stopping after ``patience`` validations without a new best; speed-up =
the step at which scratch first reached its best dev value of the language's primary metric / the step
at which transfer (same seed) first reached that value (:func:`asr_transfer.curves.speed_up`). It is a
measurement when scratch had stopped improving (no new best in its last ``patience`` validations, 3 for
a study without early stopping), else a lower bound.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import statistics
import sys
from dataclasses import dataclass

from omegaconf import OmegaConf

from asr_transfer.curves import (
    Line,
    Panel,
    best_point,
    first_reaching,
    mean_curve,
    plot_curves,
    read_study_points,
    settled,
)
from asr_transfer.curves import speed_up as speed_up_of
from asr_transfer.curves import values as curve_values
from asr_transfer.errors import InputError
from asr_transfer.fileio import atomic_open
from asr_transfer.languages import primary_metric

PATIENCE = 3  # validations without a new best after which scratch counts as no longer improving
ARMS = ("scratch", "transfer")


@dataclass
class LanguageRow:
    study: str
    lang: str
    description: str
    metric: str
    base: str
    base_parameters: int | None
    base_family: str | None  # encoder class / vocabulary kind: bases compared for size share it
    runs: dict[str, list[dict]]  # arm -> its runs (results.json rows with their dev curve), by seed
    schedule: int | None  # the steps every arm was scheduled for (None: each arm its own)
    patience: int | None  # early stopping's patience (None: runs trained all their steps)
    command: str

    @property
    def has_scratch(self) -> bool:
        return bool(self.runs["scratch"])

    @property
    def seeds(self) -> list[int]:
        """Seeds with every arm the study has (a study stopped part-way has whole seeds only)."""
        found = {run["seed"] for run in self.runs["transfer"]}
        if self.has_scratch:
            found &= {run["seed"] for run in self.runs["scratch"]}
        return sorted(found)

    def run(self, arm: str, seed: int) -> dict:
        return next(run for run in self.runs[arm] if run["seed"] == seed)

    def curve(self, arm: str, seed: int) -> list[tuple[int, float]]:
        """``(step, dev value of the language's metric)`` of an arm's run."""
        return curve_values(self.run(arm, seed)["curve"], self.metric)

    def mean(self, arm: str, key: str, seeds: list[int] | None = None) -> tuple[float, float | None]:
        """Mean of ``key`` (``test_wer``, ``test_cer``) over ``seeds`` (default: the study's), and its sd
        (None for one seed)."""
        found = [self.run(arm, seed)[key] for seed in (self.seeds if seeds is None else seeds)]
        return statistics.fmean(found), statistics.stdev(found) if len(found) > 1 else None


def family_of(config) -> str | None:
    """The base's architecture family and vocabulary kind (``ConvASREncoder/char``) from its ``.nemo``;
    None when the file is not here (a study copied without its base)."""
    from asr_transfer.nemofile import read_config, vocabulary_kind

    path = config.base.get("nemo")
    if not path or not os.path.isfile(str(path)):
        return None
    model = read_config(str(path), "base.nemo")
    return f"{str(model['encoder']['_target_']).rsplit('.', 1)[-1]}/{vocabulary_kind(model)}"


def base_of(config) -> tuple[str, int | None]:
    """The base's name and, from the provenance JSON a shipped base carries, its parameter count."""
    path = config.base.get("nemo") or config.base.get("pretrained") or "?"
    provenance = os.path.splitext(str(path))[0] + ".provenance.json"
    parameters = None
    if os.path.isfile(provenance):
        with open(provenance, encoding="utf-8") as handle:
            parameters = json.load(handle).get("parameters")
    return os.path.basename(str(path)).removesuffix(".nemo"), parameters


def load_study(folder: str) -> LanguageRow:
    results_path, config_path = os.path.join(folder, "results.json"), os.path.join(folder, "study_config.yaml")
    if not (os.path.isfile(results_path) and os.path.isfile(config_path)):
        raise InputError(f"{folder} holds no results.json and study_config.yaml; give finished study folders")
    with open(results_path, encoding="utf-8") as handle:
        results = json.load(handle)
    config = OmegaConf.load(config_path)
    full = max(run["budget"] for run in results["runs"])
    at_full = [run for run in results["runs"] if run["budget"] == full]
    runs = {arm: sorted((run for run in at_full if run["arm"] == arm), key=lambda run: run["seed"]) for arm in ARMS}
    if not runs["transfer"]:
        raise InputError(f"{folder} has no finished transfer run; give studies with a transfer arm")
    for arm_runs in runs.values():
        for run in arm_runs:
            run["curve"] = read_study_points(os.path.join(folder, "curves.csv"), run["budget"], run["arm"], run["seed"])
    base, base_parameters = base_of(config)
    overridden = any("max_steps" in str(o) for arm in config.get("arms", {}).values() for o in arm.get("overrides", []))
    return LanguageRow(
        study=results["name"],
        lang=config.lang,
        description=config.description.strip(),
        metric=primary_metric(config.lang),
        base=base,
        base_parameters=base_parameters,
        base_family=family_of(config),
        runs=runs,
        schedule=None if overridden else runs["transfer"][0].get("steps", config.get("steps")),
        patience=config.get("patience"),
        command=results.get("command", ""),
    )


def speed_up(row: LanguageRow, seed: int) -> dict:
    """One seed's speed-up: scratch's best dev value and the step it first reached it; the step transfer
    first reached it; their ratio (``asr_transfer.curves.speed_up``). Measured when scratch had stopped
    improving (no new best in its last ``patience`` validations), else a lower bound: scratch might have
    gone on to a value transfer reaches later."""
    scratch = row.run("scratch", seed)["curve"]
    best = best_point(scratch, row.metric)
    best_value = best[f"dev_{row.metric}"]
    reached = first_reaching(row.run("transfer", seed)["curve"], row.metric, best_value)
    measured = settled(scratch, row.metric, row.patience or PATIENCE)
    found = speed_up_of(best["step"], reached["step"] if reached else None, reference_settled=measured)
    return {
        "seed": seed,
        "scratch_best": best_value,
        "scratch_best_step": best["step"],
        "scratch_last_step": row.curve("scratch", seed)[-1][0],
        "transfer_step": reached["step"] if reached else None,
        "ratio": found.ratio,
        "measured": measured,
    }


def speed_up_text(found: dict) -> str:
    if found["ratio"] is None:
        return "transfer did not reach it"
    if found["measured"]:
        return f"{found['ratio']:.1f}x (measured)"
    return f">= {found['ratio']:.1f}x (scratch still improving)"


def speed_up_summary(found: list[dict]) -> str:
    """The seeds' speed-ups in one cell: their mean and sd when every seed measured one, else each seed's."""
    if len(found) > 1 and all(one["measured"] and one["ratio"] for one in found):
        ratios = [one["ratio"] for one in found]
        return f"{statistics.fmean(ratios):.1f}x ± {statistics.stdev(ratios):.1f} (measured, {len(ratios)} seeds)"
    return "; ".join(speed_up_text(one) for one in found)


def _mean_sd(mean: float, sd: float | None) -> str:
    return f"{mean:.3f}" if sd is None else f"{mean:.3f} ± {sd:.3f}"


def plot_studies(rows: list[LanguageRow], out_png: str) -> None:
    """One panel per study: scratch (dashed) and transfer against steps, in the language's metric; with
    several seeds the mean curve (steps any seed reached; early stopping ends seeds apart) and its range."""
    panels = []
    for row in rows:
        lines = []
        for arm, style in (("scratch", "--"), ("transfer", "-")):
            if not row.runs[arm]:
                continue
            steps, means, ranges = mean_curve([row.curve(arm, seed) for seed in row.seeds], every_curve=False)
            band = ([low for low, _ in ranges], [high for _, high in ranges]) if len(row.seeds) > 1 else None
            lines.append(Line(arm, steps, means, fmt=style, marker=".", band=band))
        panels.append(Panel(lines, xlabel="step", ylabel=f"dev {row.metric.upper()}", title=row.study,
                            title_size=9, ylim=(0, 1.05), legend_size=8))  # fmt: skip
    plot_curves(out_png, panels, panel_size=(3.2, 3.2))


def base_size_finding(rows: list[LanguageRow]) -> list[str]:
    """Huang et al.: larger bases transfer better. Compared where one language was trained from two bases
    under the same schedule; a clean comparison when the bases share architecture family and vocabulary
    kind (``base_family``), else the sentence says what else differs."""
    groups: dict[tuple[str, int | None, int | None], list[LanguageRow]] = {}
    for row in rows:
        groups.setdefault((row.lang, row.schedule, row.patience), []).append(row)
    lines = []
    for (lang, steps, _), group in groups.items():
        families = {row.base_family for row in group}
        if len(families) > 1 and None not in families:  # compare within a family where one has two sizes
            same = [[row for row in group if row.base_family == family] for family in families]
            widest = max(same, key=lambda rows: len({row.base for row in rows}))
            group = widest if len({row.base for row in widest}) > 1 else group
        if len({row.base for row in group}) < 2:
            continue
        group = sorted(group, key=lambda row: row.base_parameters or 0)
        seeds = sorted(set.intersection(*(set(row.seeds) for row in group)))
        if not seeds:
            continue
        wer = {row.study: row.mean("transfer", "test_wer", seeds) for row in group}
        listed = "; ".join(
            f"{row.base} ({_millions(row.base_parameters)}): {_against_scratch(row, seeds)}" for row in group
        )
        smaller, larger = group[0], group[-1]
        verdict = "does" if wer[larger.study][0] < wer[smaller.study][0] else "does not"
        clean = len({row.base_family for row in group}) == 1 and group[0].base_family is not None
        caveat = (
            f"same architecture family and vocabulary ({group[0].base_family}), so size is the difference"
            if clean
            else "the bases also differ in architecture and vocabulary, so size is not the only difference"
        )
        lines.append(
            f"- **{lang}, {steps} steps, {_seeds_text(seeds)}**: {listed}. Here the larger base "
            f"{verdict} transfer better ({caveat})."
        )
    return lines


def _against_scratch(row: LanguageRow, seeds: list[int]) -> str:
    """``transfer test WER m ± sd`` (where the study has a scratch arm, against scratch's), then its best
    dev value and the step of it (means over ``seeds``)."""
    transfer = row.mean("transfer", "test_wer", seeds)
    text = f"transfer test WER {_mean_sd(*transfer)}"
    if row.has_scratch:
        scratch = row.mean("scratch", "test_wer", seeds)[0]
        text += f" against scratch {scratch:.3f} ({scratch - transfer[0]:+.3f})"
    best = [best_point(row.run("transfer", seed)["curve"], row.metric) for seed in seeds]
    return (
        f"{text}, best dev {row.metric.upper()} {statistics.fmean(point[f'dev_{row.metric}'] for point in best):.3f}"
        f" at step {statistics.fmean(point['step'] for point in best):.0f}"
    )


def _seeds_text(seeds: list[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"


def _millions(parameters: int | None) -> str:
    return f"{parameters / 1e6:.2f}M parameters" if parameters else "size unknown"


def schedule_text(row: LanguageRow) -> str:
    """The table's short form: ``2000, patience 3`` under the protocol, ``200, fixed`` otherwise."""
    steps = row.schedule if row.schedule is not None else "own"
    return f"{steps}, patience {row.patience}" if row.patience else f"{steps}, fixed"


def protocol_text(row: LanguageRow) -> str:
    """How a study's arms were trained, and where each seed's runs ended."""
    ends = ", ".join(
        f"seed {seed}: " + ", ".join(f"{arm} {row.curve(arm, seed)[-1][0]}" for arm in ARMS if row.runs[arm])
        for seed in row.seeds
    )
    if row.patience and row.schedule:
        arms = "both arms" if row.has_scratch else "the transfer arm"
        return (f"{arms} on one {row.schedule}-step schedule, each stopped after {row.patience} validations "
                f"without a new best (the speed-up protocol); last steps: {ends}.")  # fmt: skip
    return f"each arm with its own cosine schedule, no early stopping; last steps: {ends}."


def render(rows: list[LanguageRow], command: str) -> str:
    lines = [
        "# Transfer against scratch, per language (synthetic Common Voice)",
        "",
        "Each study trains the same model twice with the same data and seed: from the shipped base "
        "(transfer, shared tokens' output rows kept) and from random weights (scratch). The speed-up protocol "
        '(README "Transfer study"): both arms on the same schedule length, each stopped by early stopping '
        "after 3 validations without a new best; speed-up = the step at which scratch first reached its best "
        "dev value of the language's primary metric (CER for Cantonese, WER otherwise) / the step at which "
        "transfer, same seed, first reached that value. It is a measurement when scratch had stopped improving "
        f"(no new best in its last {PATIENCE} validations), else a lower bound. Test values are means ± sd over "
        "the seeds. The schedule column says which studies ran under the protocol (`N, patience P`) and which "
        "ran a fixed budget with each arm on its own schedule (`N, fixed`).",
        "",
        f"Written by `{command}`.",
        "",
        "| study | base | language | metric | schedule | seeds | scratch test WER | scratch test CER "
        "| transfer test WER | transfer test CER | scratch best dev (step of last) | transfer reaches it at step "
        "| speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_table_row(row) for row in rows]
    lines += ["", "![dev curves of every study](dev_curves.png)", "", "## Bases and schedules", ""]
    lines += [f"- **{row.study}**: {row.description} Trained {protocol_text(row)}" for row in rows]
    size = base_size_finding(rows)
    lines += ["", "## Base size", ""]
    lines += size or ["- No language here was trained from two bases with the same steps; base size is not compared."]
    lines += ["", "## How each study was run", ""]
    lines += [f"- {row.study}: `{row.command}`" for row in rows]
    return "\n".join(lines) + "\n"


def _table_row(row: LanguageRow) -> str:
    """A study's table row; a base-size study (no scratch arm) has dashes where scratch's values and the
    speed-up would be: it is compared in the "Base size" section."""
    cells = [row.study, row.base, row.lang, row.metric.upper(), schedule_text(row), str(len(row.seeds))]
    for arm in ARMS:
        cells += [_mean_sd(*row.mean(arm, key)) if row.runs[arm] else "—" for key in ("test_wer", "test_cer")]
    if not row.has_scratch:
        return "| " + " | ".join([*cells, "—", "—", "no scratch arm (base-size study)"]) + " |"
    found = [speed_up(row, seed) for seed in row.seeds]
    cells += [
        "; ".join(
            f"{one['scratch_best']:.3f} ({one['scratch_best_step']} of {one['scratch_last_step']})" for one in found
        ),
        "; ".join(str(one["transfer_step"] or "n/a") for one in found),
        speed_up_summary(found),
    ]
    return "| " + " | ".join(cells) + " |"


def write_report(folders: list[str], out_dir: str, command: str) -> str:
    rows = [load_study(folder) for folder in folders]
    os.makedirs(out_dir, exist_ok=True)
    plot_studies(rows, os.path.join(out_dir, "dev_curves.png"))
    columns = ["study", "lang", "metric", "arm", "seed", "test_wer", "test_cer", "last_step", "best_dev"]
    with atomic_open(os.path.join(out_dir, "results.csv")) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([*columns, "speed_up", "speed_up_measured"])
        for row in rows:
            for seed in row.seeds:
                found = speed_up(row, seed) if row.has_scratch else {"ratio": "", "measured": ""}
                for arm in (arm for arm in ARMS if row.runs[arm]):
                    run, curve = row.run(arm, seed), row.curve(arm, seed)
                    writer.writerow(
                        [row.study, row.lang, row.metric, arm, seed, run["test_wer"], run["test_cer"], curve[-1][0],
                         min(value for _, value in curve),
                         found["ratio"] if arm == "transfer" else "", found["measured"] if arm == "transfer" else ""]
                    )  # fmt: skip
    path = os.path.join(out_dir, "RESULTS.md")
    with atomic_open(path) as handle:
        handle.write(render(rows, command))
    return path


def add_parser(commands) -> None:
    languages = commands.add_parser(
        "languages", help="per-language table of transfer against scratch, from finished two-arm studies"
    )
    languages.add_argument("studies", nargs="+", help="study output folders (results.json, study_config.yaml)")
    languages.add_argument("--out", required=True, help="folder for RESULTS.md, results.csv and dev_curves.png")


def run(args) -> None:
    command = shlex.join(["asr-transfer", "report", "languages", *args.studies, "--out", args.out])
    print(write_report(args.studies, args.out, command), file=sys.stderr)
