"""``asr-transfer transcribe --model M.nemo FILES... | --manifest M``: transcripts of audio.

In: a ``.nemo`` model and audio files or a manifest. Out: ``path<TAB>transcript`` lines on stdout, or
with ``--out F`` a NeMo manifest whose ``pred_text`` holds the transcript. A manifest's relative audio
paths are its folder's (:mod:`asr_transfer.manifests.paths`); with ``--out`` in another folder they are
rewritten so that they name the same files.
"""

from __future__ import annotations

import argparse
import os

from asr_transfer.errors import InputError
from asr_transfer.fileio import read_manifest, write_manifest
from asr_transfer.inference.boost import add_boost_arguments, apply_boost, beam_for_boost, boost_from_args
from asr_transfer.inference.model import (
    add_decoding_arguments,
    decoding_from_args,
    load_model,
    set_decoding,
    transcribe_paths,
)
from asr_transfer.manifests.checks import AUDIO_FIELDS, audio_problem, require_manifest
from asr_transfer.manifests.paths import audio_path, rebased_entry


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
    add_boost_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=8, help="utterances decoded together (default 8)")
    return parser


def audio_entries(args: argparse.Namespace) -> tuple[list[dict], list[str]]:
    """The utterances to transcribe and where their audio is (a manifest's relative paths are its
    folder's), each file checked to open before the model is loaded."""
    if args.manifest:
        require_manifest(args.manifest, AUDIO_FIELDS, audio="open", role="manifest")
        entries = list(read_manifest(args.manifest, AUDIO_FIELDS))
        return entries, [audio_path(entry["audio_filepath"], args.manifest) for entry in entries]
    # FILES on the command line are the current directory's, as any command's arguments
    problems = [(path, audio_problem(os.path.abspath(path), "open")) for path in args.files]
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
    boost = boost_from_args(args)
    if boost is not None:
        decoding = beam_for_boost(decoding, boost)
    model = load_model(args.model)
    set_decoding(model, decoding, model_path=args.model)
    if boost is not None:
        apply_boost(model, boost)
    texts = transcribe_paths(model, paths, args.batch_size)
    if args.out:
        # a path stays the same file in OUT: FILES are the current directory's, a manifest's its folder's
        listed_in = args.manifest or os.path.join(os.getcwd(), "FILES")
        lines = [rebased_entry(entry, listed_in, args.out) for entry in entries]
        write_manifest(args.out, [{**entry, "pred_text": text} for entry, text in zip(lines, texts, strict=True)])
        print(f"wrote {len(texts)} transcripts to {args.out}")
    else:
        for entry, text in zip(entries, texts, strict=True):
            print(f"{entry['audio_filepath']}\t{text}")
    return 0
