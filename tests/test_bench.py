"""The benchmark scripts run end to end on a tiny corpus and report every case (speeds are not asserted:
they belong to the scripts' printed ratios, not to a timed test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def run_tool(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / script), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_bench_prepare_skips_the_classic_baseline_without_sox(tmp_path):
    out = tmp_path / "prepare.json"
    # a PATH with python's folder but no sox or ffmpeg, as on a fresh machine
    result = run_tool(
        "bench_prepare.py",
        "--clips",
        "40",
        "--repeats",
        "1",
        "--work",
        str(tmp_path),
        "--json",
        str(out),
        env={"PATH": os.path.dirname(sys.executable)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "classic baseline skipped: no sox or ffmpeg" in result.stdout
    results = json.loads(out.read_text())
    for case in ("prepare_cv_jobs1", "prepare_cv_jobs2", "prepare_cv_shar_jobs1", "prepare_cv_shar_jobs2"):
        assert results[case]["clips_per_s"] > 0 and results[case]["peak_mib"] > 0
    assert "ours_shar_jobs2_per_core_vs_limit" in results["ratios"] and "ours_vs_classic_jobs1" not in results["ratios"]


@pytest.mark.slow
def test_bench_train_reports_loader_model_and_bound(tmp_path):
    out = tmp_path / "train.json"
    result = run_tool(
        "bench_train.py",
        "--clips",
        "40",
        "--steps",
        "2",
        "--loader-batches",
        "2",
        "--workers",
        "0",
        "--work",
        str(tmp_path),
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (model,) = json.loads(out.read_text())["models"]
    assert set(model["loader"]) == {"wav_0w", "shar_0w"}
    assert set(model["model_alone"]) == set(model["together"]) == {"fp32", "bf16-mixed"}
    assert model["bound"]["fp32"] in ("loader", "model") and model["bf16_vs_fp32"] > 0
    assert "bound at fp32:" in result.stdout
