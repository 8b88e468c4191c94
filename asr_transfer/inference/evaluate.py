"""``asr-transfer evaluate --model M.nemo --manifest test.json``: WER and CER with NeMo's decoders.

In: a ``.nemo`` model and a NeMo manifest. Out: ``OUT/hypotheses.jsonl`` (reference, hypothesis and
per-utterance error rates), ``OUT/summary.json`` (WER, CER, the primary metric, counts), a printed
line; with ``--tolerance T`` the exit status is 1 when the primary metric exceeds T. The primary
metric is CER for Han-script text (Cantonese, Mandarin), where words are not space-delimited.
References are scored in the form the model was trained on: normalized by the language file
(``--lang``; without it, NFKC, lower case and punctuation removed); a reference that normalizes to
nothing, or that the language file rejects (digits, foreign script), is skipped and counted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jiwer

from asr_transfer.errors import UserError
from asr_transfer.fileio import atomic_open, read_manifest, write_json
from asr_transfer.inference.model import (
    Decoding,
    add_decoding_arguments,
    decoding_from_args,
    load_model,
    set_decoding,
    transcribe_paths,
)
from asr_transfer.languages import is_han, text_rules
from asr_transfer.manifests.checks import audio_path, require_manifest

EVALUATION_FIELDS = ("audio_filepath", "text")


def scoring_references(texts: list[str], lang: str | None) -> tuple[list[str | None], dict]:
    """Each reference as the language file normalizes it (None when it cannot be scored), and the count
    of references changed and skipped by reason. Scoring the raw text would count quotation marks and a
    final period as word errors that training never asked the model to write."""
    rules = text_rules(lang)
    references, changed, skipped = [], 0, {}
    for text in texts:
        normalized = rules.normalize(text)
        if normalized.text is None:
            skipped[normalized.reason] = skipped.get(normalized.reason, 0) + 1
        elif normalized.text != text:
            changed += 1
        references.append(normalized.text)
    return references, {"normalized_by": rules.code, "changed": changed, "skipped": skipped}


def error_rates(references: list[str | None], hypotheses: list[str]) -> dict:
    pairs = [(ref, hyp) for ref, hyp in zip(references, hypotheses, strict=True) if ref and ref.strip()]
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
    lang: str | None = None,
) -> dict:
    if isinstance(decoding, str):
        decoding = Decoding(decoding, beam_size)
    require_manifest(manifest, EVALUATION_FIELDS, audio="open", role="evaluation manifest")
    entries = list(read_manifest(manifest, EVALUATION_FIELDS))
    model = model or load_model(model_path)
    set_decoding(model, decoding, model_path=model_path)
    started = time.time()
    manifest_dir = os.path.dirname(os.path.abspath(manifest))
    paths = [audio_path(entry["audio_filepath"], manifest_dir) for entry in entries]
    hypotheses = transcribe_paths(model, paths, batch_size)
    seconds = time.time() - started
    references, reference_report = scoring_references([entry["text"] for entry in entries], lang)
    summary = {
        "model": model_path,
        "manifest": manifest,
        "decoding": decoding.label,
        "utterances_per_second": round(len(entries) / seconds, 2) if seconds > 0 else None,
        **error_rates(references, hypotheses),
        "references": reference_report,
        "seconds": round(seconds, 2),
        "audio_hours": round(sum(float(entry.get("duration", 0)) for entry in entries) / 3600, 4),
    }
    if out_dir:
        with atomic_open(os.path.join(out_dir, "hypotheses.jsonl")) as handle:
            for entry, reference, hypothesis in zip(entries, references, hypotheses, strict=True):
                record = {
                    "audio_filepath": entry["audio_filepath"],
                    "reference": reference,
                    "hypothesis": hypothesis,
                    "cer": jiwer.cer(reference, hypothesis) if reference else None,
                }
                if reference != entry["text"]:
                    record["reference_as_written"] = entry["text"]
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        write_json(os.path.join(out_dir, "summary.json"), summary)
    return summary


def add_lang_argument(parser) -> None:
    parser.add_argument(
        "--lang",
        help="language file whose rules normalize the references before scoring, as prepare-cv did for training "
        "(default: NFKC, lower case, punctuation removed)",
    )


def describe_references(report: dict) -> str:
    """What scoring did to the references, for the result line (empty when nothing)."""
    parts = [f"{report['changed']} normalized"] if report["changed"] else []
    parts += [f"{count} skipped ({reason})" for reason, count in sorted(report["skipped"].items())]
    return f"; references: {', '.join(parts)}" if parts else ""


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
    add_lang_argument(parser)
    add_decoding_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=8, help="utterances decoded together (default 8)")
    parser.add_argument(
        "--tolerance", type=float, help="exit 1 when the primary metric (WER, CER for Han) exceeds this"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    decoding = decoding_from_args(args)
    summary = evaluate(args.model, args.manifest, args.out, decoding, batch_size=args.batch_size, lang=args.lang)
    if summary["wer"] is None:
        raise UserError(
            f"no reference of {args.manifest} is left to score{describe_references(summary['references'])}; "
            f"check its text field (and --lang)"
        )
    print(
        f"{summary['manifest']}: WER {summary['wer']:.4f}  CER {summary['cer']:.4f}  "
        f"({summary['utterances']} utterances, {summary['decoding']}, primary {summary['primary_metric']}"
        f"{describe_references(summary['references'])})"
    )
    primary = summary[summary["primary_metric"]]
    if args.tolerance is not None and primary > args.tolerance:
        print(
            f"error: {summary['primary_metric'].upper()} {primary:.4f} exceeds --tolerance {args.tolerance}",
            file=sys.stderr,
        )
        return 1
    return 0
