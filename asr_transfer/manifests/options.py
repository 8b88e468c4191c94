"""Command-line pieces shared by the manifest builders: filter and audio flags, the printed summary.

In: an argparse parser (flags are added to it) or parsed arguments. Out: :class:`BuildOptions` and a
printed summary of a build.
"""

from __future__ import annotations

import argparse

from asr_transfer.languages import available_languages
from asr_transfer.manifests.audio import AUDIO_FORMATS, DEFAULT_CLIP_FORMAT
from asr_transfer.manifests.pipeline import BuildOptions
from asr_transfer.parallel import default_jobs


def add_build_arguments(parser: argparse.ArgumentParser, shards: bool = False) -> None:
    """The flags every builder shares; ``shards``: the command also writes shards (``prepare-cv --shar``),
    whose audio format defaults to :data:`asr_transfer.manifests.shar.DEFAULT_SHARD_FORMAT`."""
    from asr_transfer.manifests.shar import DEFAULT_SHARD_FORMAT

    defaults = BuildOptions()
    shard_default = f", {DEFAULT_SHARD_FORMAT} for shards" if shards else ""
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
        "--audio-format",
        choices=sorted(AUDIO_FORMATS),
        default=None,  # None: each output's own default (clip files and shards differ)
        help=f"output audio: 16-bit WAV or FLAC (default {DEFAULT_CLIP_FORMAT} for clip files{shard_default})",
    )
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="worker processes (default: all cores)")
    parser.add_argument(
        "--min-duration",
        type=float,
        default=defaults.min_duration,
        help=f"reject clips shorter than this, in seconds (default {defaults.min_duration})",
    )
    parser.add_argument(
        "--max-duration",
        type=float,
        default=defaults.max_duration,
        help=f"reject clips longer than this, in seconds (default {defaults.max_duration})",
    )
    parser.add_argument("--min-chars-per-second", type=float, help="reject slower speech (default: language file)")
    parser.add_argument("--max-chars-per-second", type=float, help="reject faster speech (default: language file)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_options(args: argparse.Namespace, convert: bool = True) -> BuildOptions:
    return BuildOptions(
        min_duration=args.min_duration,
        max_duration=args.max_duration,
        min_chars_per_second=args.min_chars_per_second,
        max_chars_per_second=args.max_chars_per_second,
        audio_format=args.audio_format or DEFAULT_CLIP_FORMAT,
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
