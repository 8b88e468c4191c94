"""``asr-transfer transcribe --model M.nemo FILES... | --manifest M``: transcripts of audio.

In: a ``.nemo`` model and audio files or a manifest. Out: ``path<TAB>transcript`` lines on stdout, or
with ``--out F`` a NeMo manifest whose ``pred_text`` holds the transcript.
"""

from __future__ import annotations

import argparse
import sys

from asr_transfer.fileio import read_manifest, write_manifest
from asr_transfer.training.inference import load_model, set_decoding, transcribe_paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr-transfer transcribe", description=__doc__.split("\n\n")[1])
    parser.add_argument("files", nargs="*", help="audio files (any format soundfile reads)")
    parser.add_argument("--model", required=True, help=".nemo model")
    parser.add_argument("--manifest", help="transcribe the audio of this manifest instead")
    parser.add_argument("--out", help="write a manifest with pred_text here instead of printing")
    parser.add_argument("--decoding", choices=["greedy", "beam"], default="greedy")
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if bool(args.files) == bool(args.manifest):
        print("error: give audio FILES or --manifest, not both or neither", file=sys.stderr)
        return 2
    try:
        entries = list(read_manifest(args.manifest)) if args.manifest else [{"audio_filepath": f} for f in args.files]
        model = load_model(args.model)
        set_decoding(model, args.decoding, args.beam_size)
        texts = transcribe_paths(model, [entry["audio_filepath"] for entry in entries], args.batch_size)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.out:
        write_manifest(args.out, [{**entry, "pred_text": text} for entry, text in zip(entries, texts, strict=True)])
        print(f"wrote {len(texts)} transcripts to {args.out}")
    else:
        for entry, text in zip(entries, texts, strict=True):
            print(f"{entry['audio_filepath']}\t{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
