"""``asr-transfer evaluate --model M.nemo --manifest test.json``: WER and CER with NeMo's decoders.

In: a ``.nemo`` model and a NeMo manifest. Out: ``OUT/hypotheses.jsonl`` (reference, hypothesis and
per-utterance error rates), ``OUT/summary.json`` (WER, CER, the primary metric, counts), a printed
line; with ``--tolerance T`` the exit status is 1 when the primary metric exceeds T. The language is
``--lang``, else the one the model records (``finetune`` writes its ``lang`` into the model's config);
its language file's ``metric`` is the primary metric (:func:`asr_transfer.languages.primary_metric`: CER
for Cantonese and Mandarin, whose words are not space-delimited; WER without a language).
References are scored in the form the model was trained on: normalized by that language file (without
one, NFKC, lower case and punctuation removed); a reference that normalizes to nothing, or that the
language file rejects (digits, foreign script), is skipped and counted. Relative audio paths are the
manifest folder's (:mod:`asr_transfer.manifests.paths`), from any current directory.
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
from asr_transfer.inference.boost import add_boost_arguments, boost_from_args
from asr_transfer.inference.model import (
    Decoding,
    add_decoding_arguments,
    decoding_from_args,
    load_model,
    set_decoding,
    transcribe_paths,
)
from asr_transfer.languages import UnknownLanguage, load_language, primary_metric, recorded_language, text_rules
from asr_transfer.layout import summary_path
from asr_transfer.manifests.checks import EVALUATION_FIELDS, require_manifest
from asr_transfer.manifests.paths import audio_path

HYPOTHESES_FILE = "hypotheses.jsonl"


def scoring_language(lang: str | None, model_path: str | None = None, model=None) -> str | None:
    """The language a model's output is scored in: ``lang`` (``--lang``), else the one the model records
    (:func:`asr_transfer.languages.recorded_language`; read from ``model.cfg``, or from the ``.nemo``'s
    config without loading it), else None. A recorded language whose file is not found here is one
    :class:`UserError` (give --lang, or make the file available)."""
    if lang:
        return lang
    if model is not None:
        config = model.cfg
    else:
        from asr_transfer.nemofile import read_config

        config = read_config(model_path, "--model")
    recorded = recorded_language(config)
    if recorded:
        try:
            load_language(recorded)
        except UnknownLanguage as error:
            raise UserError(
                f"the model {model_path or ''} records language {recorded!r}, which has no language file here "
                f"({str(error).split('; ')[0]}); give --lang, or add {recorded}.yaml to a folder of "
                f"$ASR_TRANSFER_LANGUAGES"
            ) from None
    return recorded


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


def error_rates(references: list[str | None], hypotheses: list[str], metric: str | None = None) -> dict:
    """WER and CER over the references that can be scored (None and blank ones left out; both None when
    none is left), and ``primary_metric``: ``metric``, the language's (:func:`primary_metric`), or the
    default metric when None."""
    pairs = [(ref, hyp) for ref, hyp in zip(references, hypotheses, strict=True) if ref and ref.strip()]
    refs, hyps = [ref for ref, _ in pairs], [hyp for _, hyp in pairs]
    wer = jiwer.wer(refs, hyps) if refs else None
    cer = jiwer.cer(refs, hyps) if refs else None
    return {"wer": wer, "cer": cer, "primary_metric": metric or primary_metric(None), "utterances": len(refs)}


def evaluate(
    model_path: str,
    manifest: str,
    out_dir: str | None = None,
    decoding: str | Decoding = "greedy",
    beam_size: int = 4,
    batch_size: int = 8,
    model=None,
    lang: str | None = None,
    boost=None,
) -> dict:
    """``boost``: an :class:`asr_transfer.inference.boost.Boost` (phrase boosting, implies beam search)."""
    if isinstance(decoding, str):
        decoding = Decoding(decoding, beam_size)
    if boost is not None:
        from asr_transfer.inference.boost import beam_for_boost, read_phrases

        decoding = beam_for_boost(decoding, boost)
        terms = [phrase.text for phrase in read_phrases(boost.path, boost.lang)]
    require_manifest(manifest, EVALUATION_FIELDS, audio="open", role="evaluation manifest")
    entries = list(read_manifest(manifest, EVALUATION_FIELDS))
    lang = scoring_language(lang, model_path, model)
    model = model or load_model(model_path)
    set_decoding(model, decoding, model_path=model_path)
    if boost is not None:
        from asr_transfer.inference.boost import apply_boost

        apply_boost(model, boost)
    started = time.time()
    paths = [audio_path(entry["audio_filepath"], manifest) for entry in entries]
    hypotheses = transcribe_paths(model, paths, batch_size)
    seconds = time.time() - started
    references, reference_report = scoring_references([entry["text"] for entry in entries], lang)
    summary = {
        "model": model_path,
        "manifest": manifest,
        "decoding": decoding.label + (f"+{boost.label}" if boost is not None else ""),
        "language": lang,
        "utterances_per_second": round(len(entries) / seconds, 2) if seconds > 0 else None,
        **error_rates(references, hypotheses, primary_metric(lang)),
        "references": reference_report,
        "seconds": round(seconds, 2),
        "audio_hours": round(sum(float(entry.get("duration", 0)) for entry in entries) / 3600, 4),
    }
    if boost is not None:
        from asr_transfer.inference.boost import term_recall

        summary["boost"] = {
            "list": boost.path,
            "alpha": boost.alpha,
            "score": boost.score,
            **term_recall(references, hypotheses, terms),
        }
    if out_dir:
        with atomic_open(os.path.join(out_dir, HYPOTHESES_FILE)) as handle:
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
        write_json(summary_path(out_dir), summary)
    return summary


def add_lang_argument(parser) -> None:
    parser.add_argument(
        "--lang",
        help="language file whose rules normalize the references before scoring, as prepare-cv did for training, "
        "and whose metric is the primary one (default: the language the model records, from finetune's lang; "
        "without one: NFKC, lower case, punctuation removed, and WER)",
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
        "CTC decoders. The manifest and its audio are checked before any decoding. The primary metric is the "
        "language's (its language file's metric: CER for Cantonese and Mandarin, WER otherwise), the language "
        "being --lang or the one the model records.",
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
    add_boost_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=8, help="utterances decoded together (default 8)")
    parser.add_argument(
        "--tolerance", type=float, help="exit 1 when the primary metric (the language's: WER or CER) exceeds this"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    decoding = decoding_from_args(args)
    boost = boost_from_args(args)
    summary = evaluate(
        args.model, args.manifest, args.out, decoding, batch_size=args.batch_size, lang=args.lang, boost=boost
    )
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
