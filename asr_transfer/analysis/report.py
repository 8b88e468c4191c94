"""Reports of finished runs: dev WER curves as PNG, and RESULTS.md tables.

In: run folders (their ``curves/metrics.csv``) and evaluation summaries (``summary.json``). Out: a PNG of dev
WER against training steps, one line per run, and Markdown on stdout.

``asr-transfer report curves OUT.png LABEL=RUN_DIR ...``
``asr-transfer report demo DEMO_DIR --transfer RUN --scratch RUN`` (transfer against scratch, make demo)
``asr-transfer report domain OUT_DIR`` (before/after on the new and original domain)
``asr-transfer report languages --out DIR STUDY_DIR ...`` (per-language table, asr_transfer/study/languages.py)
"""

from __future__ import annotations

import argparse
import csv
import json
import os

from asr_transfer.errors import InputError
from asr_transfer.layout import metrics_path
from asr_transfer.plotting import saved_figure


def read_points(run_dir: str | os.PathLike) -> list[dict]:
    """The validations of a run: ``{step, seconds, dev_wer, dev_cer}`` each, in order (dev_cer None in
    curves written before it was logged)."""
    path = metrics_path(run_dir)
    if not path.is_file():
        raise InputError(
            f"{run_dir} holds no {path.relative_to(run_dir)}; give a run folder that validated at least once"
        )
    points = []
    with open(path, encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["val_wer"]:
                points.append(
                    {
                        "step": int(float(row["step"])),
                        "seconds": float(row["seconds"]),
                        "dev_wer": float(row["val_wer"]),
                        "dev_cer": float(row["val_cer"]) if row.get("val_cer") else None,
                    }
                )
    return points


def read_curve(run_dir: str) -> tuple[list[int], list[float]]:
    points = read_points(run_dir)
    return [point["step"] for point in points], [point["dev_wer"] for point in points]


def plot_curves(runs: dict[str, str], out_png: str, title: str = "dev WER during training") -> None:
    with saved_figure(out_png, figsize=(7, 4.2)) as (_, axes):
        for label, run_dir in runs.items():
            steps, wers = read_curve(run_dir)
            axes.plot(steps, wers, marker="o", markersize=3, label=label)
        axes.set_xlabel("training step")
        axes.set_ylabel("dev WER")
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.set_title(title)
        axes.legend()


def load_summary(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _rate(summary: dict | None, key: str) -> str:
    return "-" if not summary or summary.get(key) is None else f"{summary[key]:.3f}"


def demo_report(demo_dir: str, transfer_run: str, scratch_run: str) -> str:
    """RESULTS.md of the demo; the test summaries are ``DEMO_DIR/eval_{transfer,scratch}/summary.json``."""
    arms = {"transfer": ("transfer from English", transfer_run), "scratch": ("from scratch", scratch_run)}
    png = os.path.join(demo_dir, "dev_wer.png")
    plot_curves(dict(arms.values()), png, "German (synthetic Common Voice): dev WER, same step budget")
    lines = [
        "# Demo: English base -> German, against training from scratch",
        "",
        "Synthetic German Common Voice spoken by espeak-ng; the same steps, data and seed for both arms.",
        "",
        "| arm | test WER | test CER | dev WER (last) | best dev WER |",
        "|---|---|---|---|---|",
    ]
    for arm, (label, run_dir) in arms.items():
        test = load_summary(os.path.join(demo_dir, f"eval_{arm}", "summary.json"))
        _, wers = read_curve(run_dir)
        lines.append(
            f"| {label} | {_rate(test, 'wer')} | {_rate(test, 'cer')} | {wers[-1]:.3f} | {min(wers):.3f} |"
            if wers
            else f"| {label} | - | - | - | - |"
        )
    lines += ["", f"![dev WER against steps]({os.path.basename(png)})", ""]
    lines += decoding_table(demo_dir)
    return "\n".join(lines)


def decoding_table(demo_dir: str) -> list[str]:
    """The transferred model's test WER by decoding: greedy, beam, beam with the LM tuned on dev."""
    rows = [(name, load_summary(os.path.join(demo_dir, name, "summary.json"))) for name in
            ("eval_transfer", "eval_transfer_beam", "eval_transfer_lm")]  # fmt: skip
    rows = [(name, summary) for name, summary in rows if summary]
    if len(rows) < 2:
        return []
    lines = [
        "## Decoding the transferred model",
        "",
        "The LM is a character 5-gram of the training transcripts and the release's validated_sentences.tsv, "
        "without any dev or test sentence (`train-lm --prepared`); its weight and length bonus were tuned on dev "
        "(`tune-lm`), never on test.",
        "",
        "| decoding | test WER | test CER | utterances/s |",
        "|---|---|---|---|",
    ]
    for _, summary in rows:
        speed = summary.get("utterances_per_second")
        lines.append(
            f"| {summary['decoding']} | {_rate(summary, 'wer')} | {_rate(summary, 'cer')} | "
            f"{speed if speed is not None else '-'} |"
        )
    return [*lines, ""]


def domain_report(out_dir: str) -> str:
    lines = [
        "# Domain adaptation: before and after",
        "",
        "| test set | WER before | WER after | change |",
        "|---|---|---|---|",
    ]
    for name, label in (("new", "new domain"), ("original", "original domain (forgetting)")):
        before = load_summary(os.path.join(out_dir, f"eval_before_{name}", "summary.json"))
        after = load_summary(os.path.join(out_dir, f"eval_after_{name}", "summary.json"))
        if before and after:
            change = after["wer"] - before["wer"]
            lines.append(f"| {label} | {before['wer']:.3f} | {after['wer']:.3f} | {change:+.3f} |")
    if len(lines) == 4:
        raise InputError(
            f"{out_dir} holds no eval_before_new/ and eval_after_new/ summaries; run the domain recipe's stages 1 and 4"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="asr-transfer report",
        description="Reports of finished runs: a PNG of dev WER against steps, and the RESULTS.md tables of the "
        "demo and domain recipes (printed on stdout).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    curves = commands.add_parser("curves", help="dev WER against steps of several runs, in one PNG")
    curves.add_argument("png", help="the PNG to write")
    curves.add_argument("runs", nargs="+", help="LABEL=RUN_DIR, one per line of the plot")
    demo = commands.add_parser("demo", help="transfer against scratch: RESULTS.md on stdout, DEMO_DIR/dev_wer.png")
    demo.add_argument("dir", help="the demo's output folder, holding eval_transfer/ and eval_scratch/")
    demo.add_argument("--transfer", required=True, help="run folder of the transferred model")
    demo.add_argument("--scratch", required=True, help="run folder of the model trained from scratch")
    domain = commands.add_parser("domain", help="before/after WER on the new and the original domain")
    domain.add_argument("dir", help="the domain recipe's output folder, holding eval_{before,after}_{new,original}/")
    from asr_transfer.study import languages

    languages.add_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "languages":
        languages.run(args)
    elif args.command == "curves":
        plot_curves(dict(run.split("=", 1) for run in args.runs), args.png)
    elif args.command == "demo":
        print(demo_report(args.dir, args.transfer, args.scratch))
    else:
        print(domain_report(args.dir))
    return 0
