"""``asr-transfer transcribe --model M.nemo FILES... | --manifest M``: transcripts of audio.

In: a ``.nemo`` model and audio files or a manifest. Out: ``path<TAB>transcript`` lines on stdout, or
with ``--out F`` a NeMo manifest whose ``pred_text`` holds the transcript.
"""

from __future__ import annotations

import argparse
import os

from asr_transfer.errors import InputError
from asr_transfer.fileio import read_manifest, write_manifest
from asr_transfer.inference.model import (
    add_decoding_arguments,
    decoding_from_args,
    load_model,
    set_decoding,
    transcribe_paths,
)
from asr_transfer.manifests.checks import audio_path, audio_problem, require_manifest


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transfer transcribe",
        description="Transcribe audio files, or the audio of a NeMo manifest, with a .nemo model and NeMo's CTC "
        "decoders. Prints one 'path<TAB>transcript' line per file, or writes a manifest with pred_text.",
        epilog="Examples: asr-transfer transcribe --model de.nemo a.wav b.flac; "
        "asr-transfer transcribe --model de.nemo --manifest test.json --out predictions.json",
    )
    parser.add_argument(
        "files",
        nargs="*",
        help="audio files: any format (WAV, FLAC, MP3, OGG), rate and channel count libsndfile reads",
    )
    parser.add_argument("--model", required=True, help="the .nemo model")
    parser.add_argument("--manifest", help="transcribe the audio of this NeMo manifest instead of FILES")
    parser.add_argument("--out", help="write a manifest (the input lines plus pred_text) here instead of printing")
    add_decoding_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=8, help="utterances decoded together (default 8)")
    return parser


def audio_entries(args: argparse.Namespace) -> tuple[list[dict], list[str]]:
    """The utterances to transcribe and where their audio is (a manifest's relative paths are its
    folder's), each file checked to open before the model is loaded."""
    if args.manifest:
        require_manifest(args.manifest, ("audio_filepath",), audio="open", role="manifest")
        entries = list(read_manifest(args.manifest, ("audio_filepath",)))
        manifest_dir = os.path.dirname(os.path.abspath(args.manifest))
        return entries, [audio_path(entry["audio_filepath"], manifest_dir) for entry in entries]
    problems = [(path, audio_problem(path, os.getcwd(), "open")) for path in args.files]
    problems = [f"{problem}: {path}" for path, problem in problems if problem]
    if problems:
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        raise InputError(f"{problems[0]}{more}; check the paths, and give audio files libsndfile reads")
    return [{"audio_filepath": path} for path in args.files], [os.path.abspath(path) for path in args.files]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.files) == bool(args.manifest):
        parser.error("give audio FILES or --manifest, not both or neither")
    entries, paths = audio_entries(args)
    decoding = decoding_from_args(args)
    model = load_model(args.model)
    set_decoding(model, decoding, model_path=args.model)
    texts = transcribe_paths(model, paths, args.batch_size)
    if args.out:
        write_manifest(args.out, [{**entry, "pred_text": text} for entry, text in zip(entries, texts, strict=True)])
        print(f"wrote {len(texts)} transcripts to {args.out}")
    else:
        for entry, text in zip(entries, texts, strict=True):
            print(f"{entry['audio_filepath']}\t{text}")
    return 0
