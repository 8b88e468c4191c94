"""``tools/gpu_check.sh --smoke`` on CPU: the GPU check's smoke run (tiny stand-ins of both full-size families, the
recipe route through export, in fp32 here and bf16 on a GPU, greedy and beam+LM decoding) finishes and
writes every figure it would print on a GPU, so the one command prepared for a lent machine is known to
run before a GPU is."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

FIGURES = (
    "quartznet15x5_parameters",
    "quartznet15x5_bf16_vs_fp32_speedup",
    "fastconformer_ctc_large_parameters",
    "fastconformer_ctc_large_bf16_peak_memory",
    "route_test_wer_greedy",
    "route_test_wer_beam_lm",
    "greedy_batch_lm_cuda_graphs_rtfx",
    "beam_batch_lm_cuda_graphs_rtfx",
    "total_wall_time",
)


@pytest.mark.slow
def test_gpu_check_smoke_runs_on_cpu(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    finished = subprocess.run(
        ["bash", str(REPO / "tools" / "gpu_check.sh"), "--smoke", "--work", str(tmp_path / "work")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-3000:]
    figures = json.loads((out / "gpu_check.json").read_text())
    assert figures["device"] == "cpu" and figures["mode"] == "smoke"
    assert figures["smoke_because"] == "--smoke", "the smoke run was asked for, not left to the missing CUDA"
    assert not [name for name in figures if name.endswith("_error")], figures
    assert set(FIGURES) <= set(figures), set(FIGURES) - set(figures)
    assert figures["quartznet15x5_parameters"]["value"] == pytest.approx(18.9, abs=0.1)  # the full-size build
    assert (out / "gpu_check.log").read_text().count("\n") >= len(FIGURES)
