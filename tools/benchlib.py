"""Pieces both benchmarks use: the synthetic corpus they share and memory read from /proc.

In: a work folder and a clip count. Out: a synthetic German Common Voice release (made once, reused),
and the resident or proportional memory of a process tree.
"""

from __future__ import annotations

import os
from pathlib import Path

from asr_transfer.synth.synth_cv import synth_cv

REPO = Path(__file__).resolve().parent.parent
PAGE = os.sysconf("SC_PAGE_SIZE")


def synthetic_release(work: Path, clips: int) -> Path:
    """The locale folder of a ``clips``-clip synthetic German release below ``work`` (synthesized once)."""
    root = work / f"cv_de_{clips}"
    locale = root / "cv-corpus-17.0-2024-03-15" / "de"
    if not (locale / "faults.json").exists():
        print(f"synthesizing {clips} clips into {root} (once)...", flush=True)
        synth_cv("de", clips, str(root), seed=11)
    return locale


def tree_pids(root_pid: int) -> list[int]:
    pids, stack = [], [root_pid]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as handle:
                stack.extend(int(child) for child in handle.read().split())
        except (OSError, ValueError):
            continue
    return pids


def tree_pss_bytes(root_pid: int) -> int:
    """Proportional memory of a process tree: a page shared by k processes counts 1/k in each, so forked
    workers sharing their parent's pages are not counted again (resident memory would)."""
    total = 0
    for pid in tree_pids(root_pid):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):
            continue
    return total


def tree_rss_bytes(root_pid: int) -> int:
    """Resident memory of a process and all its descendants, read from /proc cheaply (the sampler
    runs beside the measured run on the same cores)."""
    total = 0
    for pid in tree_pids(root_pid):
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * PAGE
        except (OSError, ValueError):
            continue
    return total
