"""Command-line pieces shared by the manifest builders: filter and audio flags, error reporting.

In: an argparse parser (flags are added to it) or parsed arguments. Out: :class:`BuildOptions`, a
printed summary, and an exit status: 0 on success, 2 with a one-line ``error:`` for bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from asr_transfer.languages import UnknownLanguage, available_languages
from asr_transfer.manifests.audio import AUDIO_FORMATS
from asr_transfer.manifests.common_voice import NotCommonVoice
from asr_transfer.manifests.pipeline import BuildOptions
from asr_transfer.parallel import default_jobs

USER_ERRORS = (FileNotFoundError, NotADirectoryError, NotCommonVoice, UnknownLanguage, ValueError)


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lang", required=True, help=f"language file to normalize text with ({', '.join(available_languages())})"
    )
    parser.add_argument(
        "--text-option",
        action="append",
        default=[],
        metavar="NAME",
        help="enable an optional rule of the language file, e.g. fold_yo for ru (repeatable)",
    )
    parser.add_argument(
        "--audio-format", choices=sorted(AUDIO_FORMATS), default="wav", help="output audio (default wav)"
    )
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="worker processes (default: all cores)")
    parser.add_argument("--min-duration", type=float, default=0.5, help="reject clips shorter than this (s)")
    parser.add_argument("--max-duration", type=float, default=20.0, help="reject clips longer than this (s)")
    parser.add_argument("--min-chars-per-second", type=float, help="reject slower speech (default: language file)")
    parser.add_argument("--max-chars-per-second", type=float, help="reject faster speech (default: language file)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_options(args: argparse.Namespace, convert: bool = True) -> BuildOptions:
    return BuildOptions(
        min_duration=args.min_duration,
        max_duration=args.max_duration,
        min_chars_per_second=args.min_chars_per_second,
        max_chars_per_second=args.max_chars_per_second,
        audio_format=args.audio_format,
        jobs=max(1, args.jobs),
        convert=convert,
        progress=not args.no_progress,
    )


def report_summary(summary: dict, out_dir: str) -> None:
    print(
        f"{summary['rows_in']} rows: {summary['kept']} kept, {summary['rejected']} rejected "
        f"({summary['clips_per_second']} clips/s) -> {out_dir}"
    )
    for split, stats in summary["splits"].items():
        reasons = ", ".join(f"{reason} {count}" for reason, count in stats["rejected_by_reason"].items())
        print(
            f"  {split:>6}: {stats['kept']:>7} kept, {stats['hours']:.3f} h; rejected {stats['rejected']}"
            + (f" ({reasons})" if reasons else "")
        )


def run_cli(action: Callable[[], dict], report: Callable[[dict], None]) -> int:
    """Run a builder; turn expected input problems into an ``error:`` line and exit status 2."""
    try:
        result = action()
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report(result)
    return 0
