"""The real-size route (tools/real_size.py) for the families that run in seconds on a CPU: a random-weights
model of the published architecture and vocabulary size -> .nemo -> fine-tuning with a German vocabulary
(char->char, BPE->BPE, char->BPE for the Citrinet), two steps -> export -> stock NeMo restore ->
transcribe. The larger families are run by hand with the tool; their figures are in docs/results/real_size/."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from asr_transfer.fileio import read_manifest, write_manifest
from asr_transfer.inference.export import export
from asr_transfer.tokenizers.train import read_labels
from asr_transfer.training.run import RunPlan, run_finetune
from tests.conftest import CONF, REPO


def real_size_tool():
    spec = importlib.util.spec_from_file_location("real_size", REPO / "tools" / "real_size.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["real_size"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize(
    ("family", "published"),
    [("quartznet15x5", 18.9e6), ("conformer_ctc_small", 13.2e6), ("citrinet512", 36.5e6)],
)
def test_published_architecture_takes_the_route(family, published, tmp_path, german):
    tool = real_size_tool()
    spec = tool.FAMILIES[family]
    kind, size = spec.vocab
    if kind == "char":
        # English's 28 labels, not the Mandarin Citrinet's 5207: NeMo copies a model's config (which lists the
        # labels twice) dozens of times while building and swapping, 15 s more here; the tool runs 5207
        size = len(tool.ENGLISH)
    vocab = tool.base_vocabulary(tmp_path, kind, size)
    base = tmp_path / "base.nemo"
    built = tool.build_base(spec.arch, vocab, str(base), spec.hybrid)
    # the architecture file is the published one: its size within 2 % of the model card's (cards round)
    assert abs(built["parameters"] - published) / published < 0.02, built
    route, config = spec.routes[0]
    target = "bpe" if route.endswith("bpe") else "char"
    # the shortest clips, a 2-clip dev set and no extra last checkpoint: the route, at a test's cost
    subsets = {}
    for split, count in (("train", 4), ("dev", 2)):
        entries = sorted(read_manifest(german[split]), key=lambda entry: float(entry["duration"]))
        subsets[split] = tmp_path / f"{split}.json"
        write_manifest(subsets[split], entries[:count])
    outcome = run_finetune(
        RunPlan(
            config=str(CONF / config),
            exp_dir=str(tmp_path / "exp"),
            steps=2,
            val_every=2,
            progress_bar=False,
            overrides=(
                "lang=de",
                "init.pretrained=null",
                f"init.nemo={base}",
                f"vocab.kind={target}",
                f"vocab.dir={german[target]}",
                f"data.train_manifest={subsets['train']}",
                f"data.dev_manifest={subsets['dev']}",
                "data.batch_size=2",
                "data.num_workers=0",
                "exp_manager.checkpoint_callback_params.save_last=false",
            ),
        )
    )
    exported = tmp_path / "de.nemo"
    export(str(outcome.run_dir), str(exported))
    audio = next(read_manifest(subsets["dev"]))["audio_filepath"]
    stock = tool.restore_and_transcribe(str(exported), audio)
    assert stock["class"] == ("EncDecCTCModelBPE" if target == "bpe" else "EncDecCTCModel")
    assert isinstance(stock["text"], str)
    german_size = 48 if target == "bpe" else len(read_labels(german["char"] / "vocab.txt"))
    assert stock["vocabulary_size"] == german_size, "the export predicts the German vocabulary"
    throughput = json.loads((outcome.run_dir / "throughput.json").read_text())
    assert throughput["steps"] == 2 and throughput["skipped_nonfinite_batches"] == 0
