"""Reports of finished runs: dev WER curves as PNG, and RESULTS.md tables.

In: run folders (their ``curves/metrics.csv``) and evaluation summaries (``summary.json``). Out: a PNG of dev
WER against training steps, one line per run, and Markdown on stdout.

``python -m asr_transfer.training.report curves OUT.png LABEL=RUN_DIR ...``
``python -m asr_transfer.training.report demo DEMO_DIR`` (transfer against scratch, used by make demo)
``python -m asr_transfer.training.report domain OUT_DIR`` (before/after on the new and original domain)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys

from asr_transfer.plotting import saved_figure
from asr_transfer.training.callbacks import metrics_path


def read_points(run_dir: str | os.PathLike) -> list[dict]:
    """The validations of a run: ``{step, seconds, dev_wer, dev_cer}`` each, in order (dev_cer None in
    curves written before it was logged)."""
    points = []
    with open(metrics_path(run_dir), encoding="utf-8") as handle:
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


def demo_run_dir(demo_dir: str, arm: str) -> str:
    """Where recipes/demo/run.sh puts an arm's run (exp_manager: exp_dir/name/version)."""
    return os.path.join(demo_dir, "runs", arm, "v1")


def demo_report(demo_dir: str) -> str:
    runs = {
        "transfer from English": demo_run_dir(demo_dir, "transfer"),
        "from scratch": demo_run_dir(demo_dir, "scratch"),
    }
    png = os.path.join(demo_dir, "dev_wer.png")
    plot_curves(runs, png, "German (synthetic Common Voice): dev WER, same step budget")
    lines = [
        "# Demo: English base -> German, against training from scratch",
        "",
        "Synthetic German Common Voice spoken by espeak-ng; the same steps, data and seed for both arms.",
        "",
        "| arm | test WER | test CER | dev WER (last) | best dev WER |",
        "|---|---|---|---|---|",
    ]
    for label, run_dir in runs.items():
        arm = os.path.basename(os.path.dirname(run_dir))
        test = load_summary(os.path.join(demo_dir, f"eval_{arm}", "summary.json"))
        _, wers = read_curve(run_dir)
        lines.append(
            f"| {label} | {_rate(test, 'wer')} | {_rate(test, 'cer')} | {wers[-1]:.3f} | {min(wers):.3f} |"
            if wers
            else f"| {label} | - | - | - | - |"
        )
    lines += ["", f"![dev WER against steps]({os.path.basename(png)})", ""]
    return "\n".join(lines)


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
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    curves = commands.add_parser("curves")
    curves.add_argument("png")
    curves.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    commands.add_parser("demo").add_argument("dir")
    commands.add_parser("domain").add_argument("dir")
    args = parser.parse_args(argv)
    if args.command == "curves":
        plot_curves(dict(run.split("=", 1) for run in args.runs), args.png)
    elif args.command == "demo":
        print(demo_report(args.dir))
    else:
        print(domain_report(args.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
