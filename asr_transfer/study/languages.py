"""``asr-transfer report languages --out DIR STUDY_DIR ...``: the per-language table of transfer against
scratch (the synthetic analogue of Huang et al.'s table), from finished two-arm studies.

In: study output folders (``results.json`` and ``study_config.yaml`` of ``asr-transfer study``), each with
a ``scratch`` and a ``transfer`` arm. Out: ``DIR/RESULTS.md`` (test WER and CER per language and base,
the speed-up to scratch's best dev value of the language's primary metric, whether that speed-up is a
measurement or a lower bound, and what base size did), ``DIR/results.csv`` and ``DIR/dev_curves.png``.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import sys
from dataclasses import dataclass

from omegaconf import OmegaConf

from asr_transfer.curves import Line, Panel, best_point, first_reaching, plot_curves, read_study_points, settled
from asr_transfer.curves import speed_up as speed_up_of
from asr_transfer.curves import values as curve_values
from asr_transfer.errors import InputError
from asr_transfer.fileio import atomic_open
from asr_transfer.languages import primary_metric

PATIENCE = 3  # validations without a new best after which scratch counts as no longer improving


@dataclass
class LanguageRow:
    study: str
    lang: str
    description: str
    metric: str
    base: str
    base_parameters: int | None
    scratch: dict
    transfer: dict
    command: str

    def points(self, arm: str) -> list[dict]:
        return (self.scratch if arm == "scratch" else self.transfer)["curve"]

    def curve(self, arm: str) -> list[tuple[int, float]]:
        """``(step, dev value of the language's metric)`` of an arm."""
        return curve_values(self.points(arm), self.metric)


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
    arms = {run["arm"]: run for run in results["runs"] if run["budget"] == max(r["budget"] for r in results["runs"])}
    missing = {"scratch", "transfer"} - set(arms)
    if missing:
        raise InputError(f"{folder} has no {', '.join(sorted(missing))} arm; the table compares transfer with scratch")
    for arm, run in arms.items():
        run["curve"] = read_study_points(os.path.join(folder, "curves.csv"), run["budget"], arm, run["seed"])
    base, base_parameters = base_of(config)
    return LanguageRow(
        study=results["name"],
        lang=config.lang,
        description=config.description.strip(),
        metric=primary_metric(config.lang),
        base=base,
        base_parameters=base_parameters,
        scratch=arms["scratch"],
        transfer=arms["transfer"],
        command=results.get("command", ""),
    )


def speed_up(row: LanguageRow) -> dict:
    """Scratch's best dev value and the step it first reached it; the step transfer first reached it; the
    speed-up (``asr_transfer.curves.speed_up``: scratch's step over transfer's). Measured when scratch had
    stopped improving (no new best in its last PATIENCE validations), else a lower bound: scratch might
    have gone on to a value transfer reaches later."""
    scratch = row.points("scratch")
    best = best_point(scratch, row.metric)
    best_value = best[f"dev_{row.metric}"]
    reached = first_reaching(row.points("transfer"), row.metric, best_value)
    measured = settled(scratch, row.metric, PATIENCE)
    found = speed_up_of(best["step"], reached["step"] if reached else None, reference_settled=measured)
    return {
        "scratch_best": best_value,
        "scratch_best_step": best["step"],
        "scratch_last_step": row.curve("scratch")[-1][0],
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


def plot_studies(rows: list[LanguageRow], out_png: str) -> None:
    """One panel per study: scratch (dashed) and transfer against steps, in the language's metric."""
    panels = []
    for row in rows:
        lines = []
        for arm, style in (("scratch", "--"), ("transfer", "-")):
            steps, found = zip(*row.curve(arm), strict=True)
            lines.append(Line(arm, steps, found, fmt=style, marker="."))
        panels.append(Panel(lines, xlabel="step", ylabel=f"dev {row.metric.upper()}", title=row.study,
                            title_size=9, ylim=(0, 1.05), legend_size=8))  # fmt: skip
    plot_curves(out_png, panels, panel_size=(3.2, 3.2))


def base_size_finding(rows: list[LanguageRow]) -> list[str]:
    """Huang et al.: larger bases transfer better. Compared where one language was trained from two bases
    with the same steps."""
    groups: dict[tuple[str, int], list[LanguageRow]] = {}
    for row in rows:
        groups.setdefault((row.lang, row.scratch["steps"]), []).append(row)
    lines = []
    for (lang, steps), group in groups.items():
        if len({row.base for row in group}) < 2:
            continue
        group = sorted(group, key=lambda row: row.base_parameters or 0)
        listed = "; ".join(
            f"{row.base} ({_millions(row.base_parameters)}): transfer test WER {row.transfer['test_wer']:.3f} "
            f"against scratch {row.scratch['test_wer']:.3f} ({row.scratch['test_wer'] - row.transfer['test_wer']:+.3f})"
            for row in group
        )
        smaller, larger = group[0], group[-1]
        verdict = "does" if larger.transfer["test_wer"] < smaller.transfer["test_wer"] else "does not"
        lines.append(
            f"- **{lang}, {steps} steps**: {listed}. Here the larger base {verdict} transfer better "
            "(the bases also differ in architecture and vocabulary, so size is not the only difference)."
        )
    return lines


def _millions(parameters: int | None) -> str:
    return f"{parameters / 1e6:.2f}M parameters" if parameters else "size unknown"


def render(rows: list[LanguageRow], command: str) -> str:
    lines = [
        "# Transfer against scratch, per language (synthetic Common Voice)",
        "",
        "Each study trains the same model twice with the same steps, data and seed: from the shipped base "
        "(transfer, shared tokens' output rows kept) and from random weights (scratch). Speed-up: the step at "
        "which scratch first reached its best dev value of the language's primary metric (CER for Cantonese, "
        "WER otherwise), over the step at which transfer first reached that value. It is a measurement when "
        f"scratch had stopped improving (no new best in its last {PATIENCE} validations), else a lower bound.",
        "",
        f"Written by `{command}`.",
        "",
        "| study | base | language | metric | scratch test WER | scratch test CER | transfer test WER "
        "| transfer test CER | scratch best dev (step) | transfer reaches it at step | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        found = speed_up(row)
        lines.append(
            f"| {row.study} | {row.base} | {row.lang} | {row.metric.upper()} | {row.scratch['test_wer']:.3f} | "
            f"{row.scratch['test_cer']:.3f} | {row.transfer['test_wer']:.3f} | {row.transfer['test_cer']:.3f} | "
            f"{found['scratch_best']:.3f} ({found['scratch_best_step']} of {found['scratch_last_step']}) | "
            f"{found['transfer_step'] or 'n/a'} | {speed_up_text(found)} |"
        )
    lines += ["", "![dev curves of every study](dev_curves.png)", "", "## Bases", ""]
    lines += [
        f"- **{row.study}**: {row.description} Steps (each with its own cosine schedule): scratch "
        f"{row.curve('scratch')[-1][0]}, transfer {row.curve('transfer')[-1][0]}."
        for row in rows
    ]
    size = base_size_finding(rows)
    lines += ["", "## Base size", ""]
    lines += size or ["- No language here was trained from two bases with the same steps; base size is not compared."]
    lines += ["", "## How each study was run", ""]
    lines += [f"- {row.study}: `{row.command}`" for row in rows]
    return "\n".join(lines) + "\n"


def write_report(folders: list[str], out_dir: str, command: str) -> str:
    rows = [load_study(folder) for folder in folders]
    os.makedirs(out_dir, exist_ok=True)
    plot_studies(rows, os.path.join(out_dir, "dev_curves.png"))
    with atomic_open(os.path.join(out_dir, "results.csv")) as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "study",
                "lang",
                "metric",
                "arm",
                "test_wer",
                "test_cer",
                "steps",
                "best_dev",
                "speed_up",
                "speed_up_measured",
            ]
        )
        for row in rows:
            found = speed_up(row)
            for arm, run in (("scratch", row.scratch), ("transfer", row.transfer)):
                best = min(value for _, value in row.curve(arm))
                writer.writerow(
                    [
                        row.study,
                        row.lang,
                        row.metric,
                        arm,
                        run["test_wer"],
                        run["test_cer"],
                        run["curve"][-1]["step"],
                        best,
                        found["ratio"] if arm == "transfer" else "",
                        found["measured"] if arm == "transfer" else "",
                    ]
                )
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
