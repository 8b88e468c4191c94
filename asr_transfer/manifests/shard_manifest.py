"""``asr-transfer shard MANIFEST OUT_DIR --shards N``: a NeMo manifest as Lhotse Shar shards for many GPUs.

In: a NeMo manifest (``audio_filepath``, ``duration``, ``text``; other fields travel as supervision custom
fields; relative audio paths are taken from the manifest's folder), audio in any format soundfile reads.
Out, in ``OUT_DIR``: ``shar/`` (cuts + 16 kHz mono FLAC or WAV tars, lhotse's ``SharWriter``),
``shar_index.json`` (per-shard clips and hours, duration bins for bucketing), ``rejects.tsv`` (line, path,
reason, detail) and ``summary.json``. Every manifest line ends in a shard or in ``rejects.tsv``. A rerun
skips finished shards; train with ``asr-transfer finetune ... data.shar_path=OUT_DIR``.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from asr_transfer.errors import ManifestError
from asr_transfer.fileio import atomic_open, parse_manifest_line, remove_stale_temporaries, write_json
from asr_transfer.layout import rejects_path, summary_path
from asr_transfer.manifests.checks import TRAINING_FIELDS
from asr_transfer.manifests.filters import DurationRules
from asr_transfer.manifests.paths import audio_path, manifest_folder
from asr_transfer.manifests.pipeline import REJECT_DUPLICATE, REJECT_MALFORMED
from asr_transfer.manifests.shar import (
    DEFAULT_SHARD_FORMAT,
    SHAR_FORMATS,
    ShardOptions,
    ShardPlan,
    add_shard_arguments,
    shard_options,
    write_index,
    write_shards,
)
from asr_transfer.parallel import default_jobs


def clip_key(source: str, base_dir: str) -> str:
    """A cut id from the audio path below the manifest's folder: readable, unique per path, tar-safe."""
    relative = os.path.relpath(source, base_dir)
    stem = os.path.splitext(relative if not relative.startswith("..") else source)[0]
    return re.sub(r"[^\w.-]+", "_", stem).strip("_.")


def manifest_rows(manifest: str) -> Iterator[tuple[dict, str, str]]:
    """(planned row, reject reason, detail) per non-empty line; reason is "" for a usable row. Every row
    carries its ``line`` number and ``reference`` (the path as written) for rejects.tsv."""
    seen: set[str] = set()
    with open(manifest, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                entry = parse_manifest_line(line, f"line {number}", TRAINING_FIELDS)
            except ManifestError as error:
                yield {"line": number, "reference": line.strip()[:80]}, REJECT_MALFORMED, str(error)
                continue
            row = planned_row(entry, manifest, number)
            reason, detail = "", ""
            if not row["text"]:
                reason, detail = REJECT_MALFORMED, "empty text"
            elif row["source"] in seen:
                reason, detail = REJECT_DUPLICATE, "listed earlier"
            else:
                seen.add(row["source"])
            yield row, reason, detail


def planned_row(entry: dict, manifest: str, number: int) -> dict:
    reference = str(entry["audio_filepath"])
    source = audio_path(reference, manifest)
    return {
        "line": number,
        "split": "train",
        "reference": reference,
        "source": source,
        "key": clip_key(source, manifest_folder(manifest)),
        "text": str(entry["text"]).strip(),
        "metadata": {name: value for name, value in entry.items() if name not in TRAINING_FIELDS},
        "expected_duration": _number(entry["duration"]),
    }


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def shard_manifest(manifest: str, out_dir: str, options: ShardOptions, jobs: int, progress: bool = True) -> dict:
    """Write ``manifest`` as ``options.shards`` Shar shards in ``out_dir``; returns the summary."""
    if not os.path.isfile(manifest):
        raise ManifestError(f"manifest {manifest} does not exist; check the path")
    started = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    rejected: Counter = Counter()
    rows_in, first_problem, kept = 0, "", []
    with atomic_open(rejects_path(out)) as rejects:
        rejects.write("line\tpath\treason\tdetail\n")

        def reject(row: dict, reason: str, detail: str) -> None:
            rejected[reason] += 1
            rejects.write(f"{row['line']}\t{row['reference']}\t{reason}\t{' '.join(detail.split())}\n")

        with ShardPlan(out, options) as plan:
            for row, reason, detail in manifest_rows(manifest):
                rows_in += 1
                if reason:
                    reject(row, reason, detail)
                    first_problem = first_problem or f"; line {row['line']}: {reason} ({detail})"
                else:
                    plan.add(row)
            if plan.rows < options.shards:
                raise ManifestError(
                    f"{manifest} has {plan.rows} usable lines of {rows_in}, fewer than --shards {options.shards}"
                    f"{first_problem}; fix the manifest or give fewer shards"
                )
        with tqdm(total=plan.rows, unit="clip", desc="shards", disable=not progress) as bar:
            for outcome in write_shards(out, options, DurationRules(), jobs):
                bar.update(1)
                if outcome.reason:
                    reject(outcome.row, outcome.reason, outcome.detail)
                else:
                    kept.append((outcome.shard, outcome.duration))
    index = write_index(out, options, kept)
    seconds = time.time() - started
    summary = {
        "manifest": os.path.abspath(manifest),
        "rows_in": rows_in,
        "kept": index["clips"],
        "rejected": sum(rejected.values()),
        "rejected_by_reason": dict(sorted(rejected.items())),
        "hours": index["hours"],
        "shards": options.shards,
        "seconds": round(seconds, 2),
        "clips_per_second": round(rows_in / seconds, 2) if seconds > 0 else None,
    }
    write_json(summary_path(out), summary)
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transfer shard",
        description="Write a NeMo manifest as Lhotse Shar shards (cuts + audio tars, lhotse's SharWriter) for "
        "multi-GPU, multi-node training: rows dealt evenly and shuffled with a seed, shards written in "
        "parallel and atomically, duration bins for bucketing precomputed. Train with "
        "`asr-transfer finetune ... data.shar_path=OUT_DIR`; each rank reads its own shards.",
    )
    parser.add_argument("manifest", help="NeMo manifest (audio_filepath, duration, text)")
    parser.add_argument("out_dir", help="output: shar/, shar_index.json, rejects.tsv, summary.json")
    parser.add_argument("--shards", type=int, required=True, help="number of shards (a multiple of --world-size)")
    parser.add_argument(
        "--audio-format",
        choices=SHAR_FORMATS,
        default=DEFAULT_SHARD_FORMAT,
        help=f"audio in the tars (default {DEFAULT_SHARD_FORMAT})",
    )
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="worker processes (default: all cores)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_shard_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = shard_options(args, args.shards)
    summary = shard_manifest(args.manifest, args.out_dir, options, max(1, args.jobs), not args.no_progress)
    reasons = ", ".join(f"{reason} {count}" for reason, count in summary["rejected_by_reason"].items())
    print(
        f"{summary['rows_in']} rows: {summary['kept']} in {summary['shards']} shards ({summary['hours']:.3f} h), "
        f"{summary['rejected']} rejected" + (f" ({reasons})" if reasons else "") + f" -> {args.out_dir}"
    )
    return 0
