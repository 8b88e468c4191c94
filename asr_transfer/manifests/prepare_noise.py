"""``asr-transfer prepare-noise DIR OUT_DIR``: a noise (or room impulse response) manifest from a folder.

In: a folder of recordings without transcripts (any format and rate soundfile reads, any channel count,
searched recursively). Out: ``OUT_DIR/<name>.json`` (``audio_filepath`` absolute, ``duration`` in seconds,
empty ``text``: the fields NeMo's ``NoisePerturbation``/``ImpulsePerturbation`` and lhotse read),
``OUT_DIR/clips/`` (16 kHz mono 16-bit WAV), ``OUT_DIR/rejects.tsv`` (path, reason, detail) and
``OUT_DIR/summary.json``, like every other builder. A clip is rejected when it is missing, empty,
undecodable, shorter than ``--min-duration`` or silent (peak below 1e-4: no SNR can be set with it).
A folder with no usable clip is an error (:class:`InputError`).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from asr_transfer.errors import InputError
from asr_transfer.fileio import atomic_open, write_json, write_manifest
from asr_transfer.layout import rejects_path, summary_path
from asr_transfer.manifests.audio import TARGET_RATE, decode_clip, write_wav_pcm16
from asr_transfer.manifests.prepare_folder import AUDIO_SUFFIXES

SILENCE_PEAK = 1e-4  # below this (full scale 1.0) a clip has no power to scale to an SNR
REJECT_SHORT = "too_short"
REJECT_SILENT = "silent_clip"


def prepare_noise(source: str, out_dir: str, name: str = "noise", min_duration: float = 0.5) -> dict:
    """Convert every audio file under ``source``; returns the summary (also written to ``summary.json``)."""
    folder = Path(source)
    if not folder.is_dir():
        raise InputError(f"{source} is not a folder; give the folder that holds the noise recordings")
    started = time.time()
    files = sorted(path for path in folder.rglob("*") if path.suffix.lower() in AUDIO_SUFFIXES)
    clips_dir = os.path.join(out_dir, "clips")
    os.makedirs(clips_dir, exist_ok=True)
    kept, rejects = [], []
    for path in files:
        relative = path.relative_to(folder)
        samples, problem = decode_clip(str(path))
        if problem:
            rejects.append((str(relative), problem.reason, problem.detail))
            continue
        duration = samples.size / TARGET_RATE
        if duration < min_duration:
            rejects.append((str(relative), REJECT_SHORT, f"{duration:.3f} s < {min_duration} s"))
            continue
        peak = float(np.max(np.abs(samples)))
        if peak < SILENCE_PEAK:
            rejects.append((str(relative), REJECT_SILENT, f"peak {peak:.2e}"))
            continue
        destination = os.path.join(clips_dir, str(relative.with_suffix(".wav")))
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        write_wav_pcm16(destination, samples)
        kept.append({"audio_filepath": os.path.abspath(destination), "duration": round(duration, 3), "text": ""})
    manifest = os.path.join(out_dir, f"{name}.json")
    with atomic_open(rejects_path(out_dir)) as handle:
        handle.write("path\treason\tdetail\n")
        handle.writelines(f"{path}\t{reason}\t{detail}\n" for path, reason, detail in rejects)
    by_reason: dict[str, int] = {}
    for _, reason, _ in rejects:
        by_reason[reason] = by_reason.get(reason, 0) + 1
    summary = {
        "source": os.path.abspath(source),
        "manifest": os.path.abspath(manifest),
        "files_in": len(files),
        "kept": len(kept),
        "rejected": len(rejects),
        "rejected_by_reason": by_reason,
        "hours": round(sum(row["duration"] for row in kept) / 3600, 4),
        "seconds": round(time.time() - started, 2),
    }
    write_json(summary_path(out_dir), summary)
    if not kept:
        reasons = ", ".join(f"{reason} {count}" for reason, count in by_reason.items()) or "no audio file found"
        raise InputError(
            f"{source} holds no usable noise clip ({len(files)} audio files; {reasons}; see {out_dir}/rejects.tsv); "
            f"give a folder of audible recordings of at least {min_duration} s"
        )
    write_manifest(manifest, kept)
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transfer prepare-noise",
        description="Noise (or room impulse response) manifest for finetune data.noise_manifest / data.rir_manifest "
        "from a folder of recordings without transcripts: 16 kHz mono WAV, durations, rejects.tsv, summary.json.",
        epilog="Example: asr-transfer prepare-noise field_noise/ exp/noise && asr-transfer finetune ... "
        "data.noise_manifest=exp/noise/noise.json",
    )
    parser.add_argument("source", help="folder of audio files (searched recursively)")
    parser.add_argument("out_dir", help="output folder")
    parser.add_argument("--name", default="noise", help="manifest name: OUT_DIR/NAME.json (default noise)")
    parser.add_argument(
        "--min-duration", type=float, default=0.5, help="reject clips shorter than this, in seconds (default 0.5)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    summary = prepare_noise(args.source, args.out_dir, args.name, args.min_duration)
    reasons = ", ".join(f"{reason} {count}" for reason, count in summary["rejected_by_reason"].items())
    print(
        f"{summary['files_in']} files: {summary['kept']} kept ({summary['hours']:.3f} h), {summary['rejected']} "
        f"rejected{f' ({reasons})' if reasons else ''} -> {summary['manifest']}"
    )
    return 0
