"""``asr-transfer export --run exp/<recipe>/<run>/<version> --out model.nemo [--onnx DIR] [--average N]``.

In: a fine-tuning run folder (its best model, :func:`asr_transfer.layout.best_nemo`) or a ``.nemo``
file. Out: a ``.nemo`` that stock NeMo loads with ``ASRModel.restore_from`` and transcribes with,
without this package: the training data paths (local to the machine that trained) are cleared.
``--onnx DIR`` also writes ``DIR/model.onnx`` and ``DIR/tokens.txt`` for ONNX Runtime and sherpa-onnx
(:mod:`asr_transfer.inference.onnx`). ``--average N`` exports the mean weights of the run's N best
checkpoints by its monitored metric (``--average-from last``: the N last) instead of its best model
(:mod:`asr_transfer.training.average`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from omegaconf import open_dict

from asr_transfer.errors import UserError
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


def check_outputs(out: str | None, onnx_dir: str | None) -> None:
    """UserError, before any model is loaded, for an output path that cannot be written as asked."""
    if out and Path(out).is_dir():
        raise UserError(f"--out {out} is a folder; give the .nemo file to write, e.g. {Path(out) / 'model.nemo'}")
    if onnx_dir and Path(onnx_dir).exists() and not Path(onnx_dir).is_dir():
        raise UserError(f"--onnx {onnx_dir} is a file; give a folder to write model.onnx and tokens.txt into")


def export(
    run: str,
    out: str | None = None,
    onnx_dir: str | None = None,
    average: int | None = None,
    average_from: str = "best",
) -> str:
    """Write the run's best model (or the mean of ``average`` checkpoints) to ``out`` (.nemo) and/or
    ``onnx_dir``; returns a line saying what was exported. Raises UserError for a bad run or count."""
    from asr_transfer.nemofile import restore_model

    check_outputs(out, onnx_dir)
    if average:
        from asr_transfer.training.average import averaged_model

        if Path(run).is_file():
            raise UserError(f"--average needs a run folder with checkpoints, not the file {run}; give --run RUN_DIR")
        model, chosen = averaged_model(run, average, average_from)
        scores = [f" {c.monitor}={c.score:.4f}" if c.score is not None else "" for c in chosen]
        listed = ", ".join(f"step {c.step}{score}" for c, score in zip(chosen, scores, strict=True))
        source = f"mean of {len(chosen)} checkpoints of {run} ({listed})"
    else:
        best = best_nemo(run)
        check_nemo_file(best, "--run")
        model = restore_model(best, "--run", map_location="cpu")
        source = str(best)
    written = []
    if out:
        save_portable(model, out)  # before the ONNX export, which turns the model's convolution masks off
        written.append(str(out))
    if onnx_dir:
        from asr_transfer.inference.onnx import MODEL_FILE, TOKENS_FILE, export_onnx

        report = export_onnx(model, onnx_dir, comment=f"asr-transfer export of {source}")
        # sherpa-onnx assumes 80 features unless told: the one setting its NeMo CTC recognizer needs
        written.append(f"{Path(onnx_dir) / MODEL_FILE} + {TOKENS_FILE} (sherpa-onnx: feature_dim={report['feat_dim']})")
        for problem in report["sherpa_frontend_problems"]:
            print(f"warning: sherpa-onnx computes features unlike this model's: {problem}", file=sys.stderr)
    return f"exported {source} -> {' and '.join(written)}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transfer export",
        description="Write a run's best model as a stand-alone .nemo that stock NeMo restores and transcribes with, "
        "without this package; the training data paths of the machine that trained it are cleared. "
        "Optionally also as ONNX for ONNX Runtime and sherpa-onnx, and/or averaged over checkpoints.",
        epilog="The best model of a run folder exp_dir/name/version is checkpoints/<name>.nemo, which NeMo "
        "rewrites from each new best checkpoint. Recipes ask for it with --print-best. Averaging N checkpoints "
        "needs the run trained with exp_manager.checkpoint_callback_params.save_top_k >= N.",
    )
    parser.add_argument("--run", help="a run folder (exp_dir/name/version) or a .nemo file")
    parser.add_argument("--out", help="the .nemo to write")
    parser.add_argument(
        "--onnx",
        metavar="DIR",
        help="also write DIR/model.onnx (NeMo's exporter, sherpa-onnx's metadata) and DIR/tokens.txt",
    )
    parser.add_argument(
        "--average",
        type=int,
        metavar="N",
        help="export the mean weights of N checkpoints of the run (icefall's --avg) instead of its best model",
    )
    parser.add_argument(
        "--average-from",
        choices=("best", "last"),
        default="best",
        help="which N checkpoints: best by the run's monitored metric (the language's primary metric; default) "
        "or the last N by step",
    )
    parser.add_argument("--print-best", metavar="RUN", help="print the best .nemo of this run folder and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.print_best:
        print(best_nemo(args.print_best))
        return 0
    if not (args.run and (args.out or args.onnx)):
        parser.error("give --run RUN and --out MODEL.nemo and/or --onnx DIR (or --print-best RUN)")
    print(export(args.run, args.out, args.onnx, args.average, args.average_from))
    return 0
