#!/usr/bin/env python
"""Benchmark of ``prepare-cv`` audio conversion against the classic and the limit, side by side.

In: a synthetic Common Voice release of ``--clips`` clips (made once with ``synth-cv`` and reused from
``--work``). Out: a table on stdout, and ``--json`` if given, of clips per second and peak memory (all
processes of the run together) for

* ``prepare-cv`` with 1 and with 2 jobs (text, filters, manifests, wav writing included);
* the classic conversion: one ``sox`` (or ``ffmpeg``) process per clip, in a thread pool of the same
  size, as NeMo's ``get_commonvoice_data.py`` does through pysox;
* the limit: bare MP3 decode + soxr resample in one process, nothing written;

with the ratios prepare-cv/classic and prepare-cv/limit per core, and prepare-cv's peak memory on the
first 500 clips against all of them (flat memory means streaming works).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing.pool import ThreadPool
from pathlib import Path

from asr_transfer.manifests.audio import decode_mono
from asr_transfer.manifests.common_voice import clip_file_name, read_clip_tsv
from asr_transfer.synth.synth_cv import synth_cv

REPO = Path(__file__).resolve().parent.parent


PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss_bytes(root_pid: int) -> int:
    """Resident memory of a process and all its descendants, read from /proc cheaply (the sampler
    runs beside the measured run on the same cores)."""
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * PAGE
            with open(f"/proc/{pid}/task/{pid}/children") as handle:
                stack.extend(int(child) for child in handle.read().split())
        except (OSError, ValueError):
            continue
    return total


def run_measured(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak resident memory (MiB) of a command and its children."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss_bytes(process.pid))
        time.sleep(0.1)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode})")
    return time.perf_counter() - started, peak // (1 << 20)


def prepare_command(locale: Path, out: Path, jobs: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "asr_transfer.cli",
        "prepare-cv",
        str(locale),
        str(out),
        "--lang",
        "de",
        "--jobs",
        str(jobs),
        "--no-progress",
    ]


def clip_paths(locale: Path) -> list[Path]:
    rows = [row for split in ("train", "dev", "test") for row in read_clip_tsv(locale / f"{split}.tsv", split)]
    return [locale / "clips" / clip_file_name(row.path) for row in rows]


def classic_conversion(clips: list[Path], out: Path, jobs: int) -> float:
    tool = shutil.which("sox") or shutil.which("ffmpeg")
    if tool is None:
        raise RuntimeError("the classic baseline needs sox (apt-get install sox libsox-fmt-mp3) or ffmpeg")
    out.mkdir(parents=True, exist_ok=True)

    def convert(clip: Path) -> None:
        target = out / f"{clip.stem}.wav"
        if tool.endswith("sox"):
            command = [tool, str(clip), "-r", "16000", "-c", "1", "-b", "16", str(target)]
        else:
            command = [tool, "-y", "-loglevel", "error", "-i", str(clip), "-ar", "16000", "-ac", "1", str(target)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    started = time.perf_counter()
    with ThreadPool(jobs) as pool:
        pool.map(convert, clips)
    return time.perf_counter() - started


def bare_limit(clips: list[Path]) -> float:
    started = time.perf_counter()
    for clip in clips:
        decode_mono(str(clip))
    return time.perf_counter() - started


def first_n_locale(locale: Path, count: int, target: Path) -> Path:
    """A copy of the release's TSVs holding only the first ``count`` clips, sharing the clips folder."""
    target.mkdir(parents=True, exist_ok=True)
    if not (target / "clips").exists():
        (target / "clips").symlink_to(locale / "clips")
    remaining = count
    for split in ("train", "dev", "test"):
        lines = (locale / f"{split}.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
        take = max(1, min(len(lines) - 1, remaining if split == "train" else max(1, remaining // 4)))
        remaining -= take
        (target / f"{split}.tsv").write_text("".join(lines[: 1 + take]), encoding="utf-8")
    shutil.copy(locale / "clip_durations.tsv", target / "clip_durations.tsv")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=2000, help="clips in the synthetic corpus (default 2000)")
    parser.add_argument("--work", default=str(REPO / "bench_out"), help="corpus cache and scratch folder")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    work = Path(args.work)
    corpus_root = work / f"cv_de_{args.clips}"
    locale = corpus_root / "cv-corpus-17.0-2024-03-15" / "de"
    if not (locale / "faults.json").exists():
        print(f"synthesizing {args.clips} clips into {corpus_root} (once)...", flush=True)
        synth_cv("de", args.clips, str(corpus_root), seed=11)
    clips = clip_paths(locale)
    n = len(clips)
    results: dict = {"clips": n, "cores": os.cpu_count()}
    scratch = Path(tempfile.mkdtemp(dir=work))
    try:
        for jobs in (1, 2):
            seconds, peak = run_measured(prepare_command(locale, scratch / f"ours_{jobs}", jobs))
            results[f"prepare_cv_jobs{jobs}"] = {"clips_per_s": n / seconds, "peak_mib": peak}
        for jobs in (1, 2):
            seconds = classic_conversion(clips, scratch / f"classic_{jobs}", jobs)
            results[f"classic_jobs{jobs}"] = {"clips_per_s": n / seconds}
        results["limit_1_process"] = {"clips_per_s": n / bare_limit(clips)}
        small = first_n_locale(locale, 500, scratch / "first500")
        seconds, peak = run_measured(prepare_command(small, scratch / "ours_500", 2))
        results["prepare_cv_jobs2_500_clips"] = {"clips_per_s": 500 / seconds, "peak_mib": peak}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ours1, ours2 = results["prepare_cv_jobs1"]["clips_per_s"], results["prepare_cv_jobs2"]["clips_per_s"]
    results["ratios"] = {
        "ours_vs_classic_jobs1": ours1 / results["classic_jobs1"]["clips_per_s"],
        "ours_vs_classic_jobs2": ours2 / results["classic_jobs2"]["clips_per_s"],
        "ours_jobs1_vs_limit": ours1 / results["limit_1_process"]["clips_per_s"],
        "ours_jobs2_per_core_vs_limit": ours2 / 2 / results["limit_1_process"]["clips_per_s"],
        "peak_memory_2000_vs_500": results["prepare_cv_jobs2"]["peak_mib"]
        / results["prepare_cv_jobs2_500_clips"]["peak_mib"],
    }
    print(f"\n{n} clips, synthetic German Common Voice (MP3 32/48 kHz -> 16 kHz WAV)")
    print(f"{'run':<34}{'clips/s':>10}{'peak MiB':>10}")
    for name, value in results.items():
        if isinstance(value, dict) and "clips_per_s" in value:
            print(f"{name:<34}{value['clips_per_s']:>10.1f}{value.get('peak_mib', ''):>10}")
    print()
    for name, ratio in results["ratios"].items():
        print(f"{name:<34}{ratio:>10.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
