"""Reports of finished runs: dev WER curves as PNG, and RESULTS.md tables.

In: run folders (their ``curves/metrics.csv``) and evaluation summaries (``summary.json``), read and plotted
with ``asr_transfer.curves``; folder names from ``asr_transfer.layout``. Out: a PNG of dev WER against
training steps, one line per run, and Markdown on stdout.

``asr-transfer report curves OUT.png LABEL=RUN_DIR ...``
``asr-transfer report demo DEMO_DIR --transfer RUN --scratch RUN`` (transfer against scratch, make demo)
``asr-transfer report domain OUT_DIR`` (before/after on the new and original domain)
``asr-transfer report demo|domain DIR --print WHAT``: the path of an evaluation folder (``eval-transfer``,
``eval-before-new``, ...) or the demo's plot, from ``asr_transfer.layout``, for the recipes to use.
``asr-transfer report languages --out DIR STUDY_DIR ...`` (per-language table, asr_transfer/study/languages.py)
"""

from __future__ import annotations

import argparse
import os

from asr_transfer import layout
from asr_transfer.curves import Line, Panel, load_summary, plot_curves, read_points, values
from asr_transfer.errors import InputError, UserError

__all__ = ["decoding_table", "demo_report", "domain_report", "load_summary", "main", "plot_runs", "read_points"]


def plot_runs(runs: dict[str, str], out_png: str | os.PathLike, title: str = "dev WER during training") -> None:
    """Dev WER against steps of several run folders (label -> folder), one line each, in one PNG."""
    lines = []
    for label, run_dir in runs.items():
        found = values(read_points(run_dir), "wer")
        lines.append(Line(label, [step for step, _ in found], [wer for _, wer in found], markersize=3))
    plot_curves(out_png, [Panel(lines, title=title)], panel_size=(7, 4.2))


def _rate(summary: dict | None, key: str) -> str:
    return "-" if not summary or summary.get(key) is None else f"{summary[key]:.3f}"


def demo_report(demo_dir: str, transfer_run: str, scratch_run: str) -> str:
    """RESULTS.md of the demo, and its plot (``layout.demo_plot``); the test summaries are those of
    ``layout.eval_dir(DEMO_DIR, "transfer" | "scratch")``."""
    arms = {"transfer": ("transfer from English", transfer_run), "scratch": ("from scratch", scratch_run)}
    png = layout.demo_plot(demo_dir)
    plot_runs(dict(arms.values()), png, "German (synthetic Common Voice): dev WER, same step budget")
    lines = [
        "# Demo: English base -> German, against training from scratch",
        "",
        "Synthetic German Common Voice spoken by espeak-ng; the same steps, data and seed for both arms.",
        "",
        "| arm | test WER | test CER | dev WER (last) | best dev WER |",
        "|---|---|---|---|---|",
    ]
    for arm, (label, run_dir) in arms.items():
        test = load_summary(layout.summary_path(layout.eval_dir(demo_dir, arm)))
        wers = [wer for _, wer in values(read_points(run_dir), "wer")]
        lines.append(
            f"| {label} | {_rate(test, 'wer')} | {_rate(test, 'cer')} | {wers[-1]:.3f} | {min(wers):.3f} |"
            if wers
            else f"| {label} | - | - | - | - |"
        )
    lines += ["", f"![dev WER against steps]({png.name})", ""]
    lines += decoding_table(demo_dir)
    return "\n".join(lines)


def decoding_table(demo_dir: str) -> list[str]:
    """The transferred model's test WER by decoding: greedy, beam, beam with the LM tuned on dev."""
    rows = [load_summary(layout.summary_path(layout.eval_dir(demo_dir, name))) for name in
            ("transfer", "transfer_beam", "transfer_lm")]  # fmt: skip
    rows = [summary for summary in rows if summary]
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
    for summary in rows:
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
        before = load_summary(layout.summary_path(layout.eval_dir(out_dir, f"before_{name}")))
        after = load_summary(layout.summary_path(layout.eval_dir(out_dir, f"after_{name}")))
        if before and after:
            change = after["wer"] - before["wer"]
            lines.append(f"| {label} | {before['wer']:.3f} | {after['wer']:.3f} | {change:+.3f} |")
    if len(lines) == 4:
        raise InputError(
            f"{out_dir} holds no eval_before_new/ and eval_after_new/ summaries; run the domain recipe's stages 1 and 4"
        )
    return "\n".join(lines) + "\n"


def _print_option(parser, recipe: str) -> None:
    names = ", ".join(layout.recipe_paths(".", recipe))
    parser.add_argument(
        "--print",
        metavar="WHAT",
        dest="print_what",
        help=f"print the path of WHAT in the output folder and exit ({names}): the recipe asks for its "
        "folder names instead of spelling them",
    )


def printable(folder: str, recipe: str, what: str) -> str:
    """The path ``report demo|domain DIR --print WHAT`` prints (``layout.recipe_paths``)."""
    paths = layout.recipe_paths(folder, recipe)
    if what not in paths:
        raise UserError(f"--print {what}: not a name of the {recipe} recipe's outputs; use one of {', '.join(paths)}")
    return str(paths[what])


def _runs(pairs: list[str]) -> dict[str, str]:
    if any("=" not in pair for pair in pairs):
        raise UserError(f"runs {pairs}: give each as LABEL=RUN_DIR, for example transfer=exp/de/transfer/v1")
    return dict(pair.split("=", 1) for pair in pairs)


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
    demo.add_argument("--transfer", help="run folder of the transferred model (required unless --print)")
    demo.add_argument("--scratch", help="run folder of the model trained from scratch (required unless --print)")
    _print_option(demo, "demo")
    domain = commands.add_parser("domain", help="before/after WER on the new and the original domain")
    domain.add_argument("dir", help="the domain recipe's output folder, holding eval_{before,after}_{new,original}/")
    _print_option(domain, "domain")
    from asr_transfer.study import languages

    languages.add_parser(commands)
    args = parser.parse_args(argv)
    if getattr(args, "print_what", None):
        print(printable(args.dir, args.command, args.print_what))
    elif args.command == "languages":
        languages.run(args)
    elif args.command == "curves":
        plot_runs(_runs(args.runs), args.png)
    elif args.command == "demo":
        if not (args.transfer and args.scratch):
            raise UserError("report demo needs --transfer RUN and --scratch RUN, the two arms' run folders")
        print(demo_report(args.dir, args.transfer, args.scratch))
    else:
        print(domain_report(args.dir))
    return 0
