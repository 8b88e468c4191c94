"""Shared fixtures: small synthetic Common Voice corpora spoken by espeak-ng, made once per session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asr_transfer.manifests.pipeline import BuildOptions
from asr_transfer.manifests.prepare_cv import prepare_common_voice
from asr_transfer.synth.synth_cv import synth_cv


def quiet_options(**overrides) -> BuildOptions:
    return BuildOptions(progress=False, jobs=2, **overrides)


@pytest.fixture(scope="session")
def faulty_de_corpus(tmp_path_factory) -> Path:
    """A v17 German release with every planted fault; returns the locale folder."""
    root = tmp_path_factory.mktemp("cv_de_faults")
    return synth_cv("de", 60, str(root), seed=3, faults=True, progress=False)


@pytest.fixture(scope="session")
def prepared_de(faulty_de_corpus, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("prepared_de")
    summary = prepare_common_voice(str(faulty_de_corpus.parent.parent), str(out), "de", quiet_options())
    return out, summary


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
