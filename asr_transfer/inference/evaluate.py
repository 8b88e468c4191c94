"""``asr-transfer evaluate --model M.nemo --manifest test.json``: WER and CER with NeMo's decoders.

In: a ``.nemo`` model and a NeMo manifest. Out: ``OUT/hypotheses.jsonl`` (reference, hypothesis and
per-utterance error rates), ``OUT/summary.json`` (WER, CER, the primary metric, counts), a printed
line; with ``--tolerance T`` the exit status is 1 when the primary metric exceeds T. The primary
metric is CER for Han-script text (Cantonese, Mandarin), where words are not space-delimited.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jiwer

from asr_transfer.fileio import atomic_open, read_manifest, write_json
from asr_transfer.inference.model import (
    Decoding,
    add_decoding_arguments,
    decoding_from_args,
    load_model,
    set_decoding,
    transcribe_paths,
)
from asr_transfer.languages import is_han
from asr_transfer.manifests.checks import require_manifest

EVALUATION_FIELDS = ("audio_filepath", "text")


def error_rates(references: list[str], hypotheses: list[str]) -> dict:
    pairs = [(ref, hyp) for ref, hyp in zip(references, hypotheses, strict=True) if ref.strip()]
    refs, hyps = [ref for ref, _ in pairs], [hyp for _, hyp in pairs]
    han = any(is_han(char) for ref in refs for char in ref)
    wer = jiwer.wer(refs, hyps) if refs else None
    cer = jiwer.cer(refs, hyps) if refs else None
    return {"wer": wer, "cer": cer, "primary_metric": "cer" if han else "wer", "utterances": len(refs)}


def evaluate(
    model_path: str,
    manifest: str,
    out_dir: str | None = None,
    decoding: str | Decoding = "greedy",
    beam_size: int = 4,
    batch_size: int = 8,
    model=None,
) -> dict:
    if isinstance(decoding, str):
        decoding = Decoding(decoding, beam_size)
    require_manifest(manifest, EVALUATION_FIELDS, audio="open", role="evaluation manifest")
    entries = list(read_manifest(manifest, EVALUATION_FIELDS))
    model = model or load_model(model_path)
    set_decoding(model, decoding)
    started = time.time()
    hypotheses = transcribe_paths(model, [entry["audio_filepath"] for entry in entries], batch_size)
    seconds = time.time() - started
    references = [entry["text"] for entry in entries]
    summary = {
        "model": model_path,
        "manifest": manifest,
        "decoding": decoding.label,
        "utterances_per_second": round(len(entries) / seconds, 2) if seconds > 0 else None,
        **error_rates(references, hypotheses),
        "seconds": round(seconds, 2),
        "audio_hours": round(sum(float(entry.get("duration", 0)) for entry in entries) / 3600, 4),
    }
    if out_dir:
        with atomic_open(os.path.join(out_dir, "hypotheses.jsonl")) as handle:
            for entry, hypothesis in zip(entries, hypotheses, strict=True):
                record = {
                    "audio_filepath": entry["audio_filepath"],
                    "reference": entry["text"],
                    "hypothesis": hypothesis,
                    "cer": jiwer.cer(entry["text"], hypothesis) if entry["text"] else None,
                }
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        write_json(os.path.join(out_dir, "summary.json"), summary)
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transfer evaluate",
        description="Word and character error rates of a .nemo model on a NeMo manifest, decoded with NeMo's "
        "CTC decoders. The manifest and its audio are checked before any decoding. The primary metric is CER "
        "for Han-script text (Cantonese, Mandarin), where words are not space-delimited, and WER otherwise.",
        epilog="Example: asr-transfer evaluate --model exp/de/de_quartznet.nemo --manifest exp/de/data/test.json "
        "--out exp/de/eval_test --decoding beam --beam-size 8",
    )
    parser.add_argument("--model", required=True, help="the .nemo model to evaluate")
    parser.add_argument(
        "--manifest", required=True, help="NeMo manifest: audio_filepath and text (the reference) on every line"
    )
    parser.add_argument("--out", help="folder for hypotheses.jsonl (one line per utterance) and summary.json")
    add_decoding_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=8, help="utterances decoded together (default 8)")
    parser.add_argument(
        "--tolerance", type=float, help="exit 1 when the primary metric (WER, CER for Han) exceeds this"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    decoding = decoding_from_args(args)
    summary = evaluate(args.model, args.manifest, args.out, decoding, batch_size=args.batch_size)
    print(
        f"{summary['manifest']}: WER {summary['wer']:.4f}  CER {summary['cer']:.4f}  "
        f"({summary['utterances']} utterances, {summary['decoding']}, primary {summary['primary_metric']})"
    )
    primary = summary[summary["primary_metric"]]
    if args.tolerance is not None and primary > args.tolerance:
        print(
            f"error: {summary['primary_metric'].upper()} {primary:.4f} exceeds --tolerance {args.tolerance}",
            file=sys.stderr,
        )
        return 1
    return 0
