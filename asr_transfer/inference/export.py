"""``asr-transfer export --run exp/<recipe>/<run>/<version> --out model.nemo``: a stand-alone model.

In: a fine-tuning run folder (its best model, :func:`asr_transfer.layout.best_nemo`) or a ``.nemo``
file. Out: a ``.nemo`` that stock NeMo loads with ``ASRModel.restore_from`` and transcribes with,
without this package: the training data paths (local to the machine that trained) are cleared.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from omegaconf import open_dict

from asr_transfer.fileio import atomic_path
from asr_transfer.layout import best_nemo
from asr_transfer.nemofile import check_nemo_file

DATASET_SECTIONS = ("train_ds", "validation_ds", "test_ds")


def is_path_key(key: str) -> bool:
    """Dataset keys that name this machine's files: manifests, shards, tarred audio, Lhotse inputs."""
    return key.endswith(("_path", "_filepath", "_filepaths", "_paths", "_dir")) or key in ("input_cfg", "cuts_path")


def drop_training_paths(model) -> None:
    """Null every key of the model's config that names a training file (manifests, ``shar_path``, tarred
    audio, the tokenizer folder it was built from), so an export carries nothing of this machine.
    The tokenizer's own files are packed in the archive (``nemo:`` artifacts) and stay."""
    with open_dict(model.cfg):
        for section in DATASET_SECTIONS:
            dataset = model.cfg.get(section)
            if dataset is None:
                continue
            for key in list(dataset.keys()):
                if is_path_key(str(key)) and dataset[key] is not None:
                    dataset[key] = None
        tokenizer = model.cfg.get("tokenizer")
        if tokenizer is not None and tokenizer.get("dir"):
            tokenizer.dir = None  # NeMo reads the packed model_path/vocab_path, never dir, on restore


def save_portable(model, out: str | os.PathLike) -> Path:
    """Write ``model`` to ``out`` atomically, without training paths (:func:`drop_training_paths`)."""
    drop_training_paths(model)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with atomic_path(str(out)) as tmp:
        model.save_to(tmp)
    return Path(out)


def export(run: str, out: str) -> Path:
    source = best_nemo(run)
    check_nemo_file(source, "--run")
    from asr_transfer.nemofile import restore_model

    save_portable(restore_model(source, "--run", map_location="cpu"), out)
    return source


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transfer export",
        description="Write a run's best model as a stand-alone .nemo that stock NeMo restores and transcribes with, "
        "without this package; the training data paths of the machine that trained it are cleared.",
        epilog="The best model of a run folder exp_dir/name/version is checkpoints/<name>.nemo, which NeMo "
        "rewrites from each new best checkpoint. Recipes ask for it with --print-best.",
    )
    parser.add_argument("--run", help="a run folder (exp_dir/name/version) or a .nemo file")
    parser.add_argument("--out", help="the .nemo to write")
    parser.add_argument("--print-best", metavar="RUN", help="print the best .nemo of this run folder and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.print_best:
        print(best_nemo(args.print_best))
        return 0
    if not (args.run and args.out):
        parser.error("give --run RUN and --out MODEL.nemo (or --print-best RUN)")
    source = export(args.run, args.out)
    print(f"exported {source} -> {args.out}")
    return 0
