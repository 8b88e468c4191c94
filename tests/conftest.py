"""Shared fixtures: small synthetic Common Voice corpora spoken by espeak-ng, made once per session."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from asr_transfer.manifests.pipeline import BuildOptions
from asr_transfer.manifests.prepare_cv import prepare_common_voice
from asr_transfer.synth.synth_cv import synth_cv
from asr_transfer.tokenizers.train import train_tokenizer
from asr_transfer.training.config import load_config
from asr_transfer.training.finetune import scratch_model_config
from asr_transfer.training.models import build_model

# NeMo's log handler keeps the stderr it found when first imported: under pytest that can be an earlier
# test's capture file, closed since, and every later log line would print a "--- Logging error ---" report.
logging.raiseExceptions = False

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "recipes" / "conf"
ENGLISH = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]


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


def run_recipe_process(
    cwd: Path, *args: str, timeout: int = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``bash ARGS`` in ``cwd`` with this interpreter as the recipe's PYTHON; asserts it exits 0."""
    env = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    done = subprocess.run(["bash", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def char_vocab(tmp_path, labels, name="base") -> OmegaConf:
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
    return OmegaConf.create({"kind": "char", "dir": str(folder)})


@pytest.fixture(scope="session")
def german(prepared_de, tmp_path_factory):
    out, _ = prepared_de
    root = tmp_path_factory.mktemp("tok")
    train = str(out / "train.json")
    return {
        "train": train,
        "dev": str(out / "dev.json"),
        "char": train_tokenizer([train], "de", "char", root),
        "bpe": train_tokenizer([train], "de", "bpe", root, vocab_size=48),
    }


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> str:
    """A tiny English character model with random weights, saved as .nemo (stands in for a base)."""
    tmp = tmp_path_factory.mktemp("base")
    cfg = load_config(str(CONF / "tiny_quartznet_char.yaml"), ["vocab.dir=unused"])
    model = build_model(scratch_model_config(cfg), char_vocab(tmp, ENGLISH))
    path = tmp / "tiny_en.nemo"
    model.save_to(str(path))
    return str(path)


@pytest.fixture(scope="session")
def english_model_and_data(tmp_path_factory):
    """The shipped English char base and a small synthetic English corpus it can read: (model, train, dev)."""
    root = tmp_path_factory.mktemp("english")
    corpus = synth_cv("en", 40, str(root / "cv"), seed=11, progress=False)
    out = root / "data"
    prepare_common_voice(str(corpus.parent.parent), str(out), "en", quiet_options())
    model = REPO / "recipes" / "en_base" / "model" / "en_tiny_quartznet_char.nemo"
    return str(model), str(out / "train.json"), str(out / "dev.json")
