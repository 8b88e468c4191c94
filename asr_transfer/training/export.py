"""``asr-transfer export --run exp/<recipe>/<run>/<version> --out model.nemo``: a stand-alone model.

In: a fine-tuning run folder (its best ``checkpoints/*.nemo``) or a ``.nemo`` file. Out: a ``.nemo``
that stock NeMo loads with ``ASRModel.restore_from`` and transcribes with, without this package: the
training data paths (local to the machine that trained) are cleared from its config.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from omegaconf import open_dict

from asr_transfer.fileio import atomic_path


def best_nemo(run: str) -> Path:
    path = Path(run)
    if path.is_file() and path.suffix == ".nemo":
        return path
    candidates = sorted((path / "checkpoints").glob("*.nemo")) if path.is_dir() else []
    candidates = [candidate for candidate in candidates if not candidate.stem.endswith("-last")]
    if not candidates:
        raise FileNotFoundError(f"{run} holds no checkpoints/*.nemo: is it a finished fine-tuning run folder?")
    return min(candidates, key=lambda candidate: len(candidate.name))  # run.nemo before run-v1.nemo backups


def export(run: str, out: str) -> Path:
    from nemo.collections.asr.models import ASRModel

    source = best_nemo(run)
    model = ASRModel.restore_from(str(source), map_location="cpu")
    with open_dict(model.cfg):
        for key in ("train_ds", "validation_ds", "test_ds"):
            if key in model.cfg and model.cfg[key] is not None:
                model.cfg[key].manifest_filepath = None
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with atomic_path(out) as tmp:
        model.save_to(tmp)
    return source


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr-transfer export", description=__doc__.split("\n\n")[1])
    parser.add_argument("--run", required=True, help="run folder (exp/<recipe>/<run>/<version>) or a .nemo")
    parser.add_argument("--out", required=True, help="output .nemo")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        source = export(args.run, args.out)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"exported {source} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
