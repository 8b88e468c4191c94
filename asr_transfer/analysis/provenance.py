"""Provenance of a shipped model: which config, data, result and bytes it is.

In: a ``.nemo`` file, the run's resolved config, an evaluation summary and a free-text note. Out:
``<model>.provenance.json`` beside the model: sha256, size, parameter count, dev WER/CER, the config.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os

from omegaconf import OmegaConf

from asr_transfer.errors import InputError
from asr_transfer.fileio import write_json
from asr_transfer.nemofile import check_nemo_file


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def provenance_path(model_path: str) -> str:
    return os.path.splitext(model_path)[0] + ".provenance.json"


def write_provenance(model_path: str, config_path: str, eval_summary: str, note: str) -> str:
    check_nemo_file(model_path, "model")
    for option, path in (("--config", config_path), ("--eval", eval_summary)):
        if not os.path.isfile(path):
            raise InputError(f"{option} {path} does not exist; give the run's finetune_config.yaml and a summary.json")
    from asr_transfer.nemofile import restore_model

    model = restore_model(model_path, "model", map_location="cpu")
    with open(eval_summary, encoding="utf-8") as handle:
        evaluation = json.load(handle)
    record = {
        "model": os.path.basename(model_path),
        "sha256": sha256(model_path),
        "bytes": os.path.getsize(model_path),
        "parameters": sum(p.numel() for p in model.parameters()),
        "labels": list(model.decoder.vocabulary),
        "dev": {key: evaluation[key] for key in ("wer", "cer", "utterances", "decoding")},
        "note": note,
        "config": OmegaConf.to_container(OmegaConf.load(config_path), resolve=True),
    }
    out = provenance_path(model_path)
    write_json(out, record)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="asr-transfer provenance",
        description="Write MODEL.provenance.json beside a shipped .nemo: sha256, size, parameters, labels, the dev "
        "WER and CER of an evaluation, the training run's resolved config and a note (data, seed, command).",
    )
    parser.add_argument("model", help="the .nemo file")
    parser.add_argument("--config", required=True, help="the run's finetune_config.yaml")
    parser.add_argument("--eval", required=True, help="summary.json of asr-transfer evaluate on dev")
    parser.add_argument("--note", default="", help="free text: the data, seed and command that made the model")
    args = parser.parse_args(argv)
    print(f"wrote {write_provenance(args.model, args.config, args.eval, args.note)}")
    return 0
