"""``asr-transfer filter --model M.nemo --manifest train.json --max-cer 0.65 --out clean.json``: training data
cleaned with a model, after NeMo's Speech Data Processor (its Common Voice configs drop utterances whose CER
under a pretrained model is above 65 %).

In: a ``.nemo`` model that reads the manifest's language (a base fine-tuned on it, or the recipe's stage-3
model), a NeMo manifest (``audio_filepath`` and ``text`` on every line), ``--max-cer`` and the language
file that normalizes the references (``--lang``, else the one the model records, as ``evaluate`` does).
Every utterance is transcribed (greedy, batched) and its CER computed against its normalized reference.
Out: ``OUT`` holds the utterances with CER <= max-cer, their input lines unchanged and in order (a relative
audio path is rewritten only when OUT lies in another folder than the manifest, so it still names the same
file); ``OUT.rejects.tsv`` every other line (audio_filepath, cer, reference, hypothesis, reason: the CER is
too high, or the reference cannot be scored); ``OUT.summary.json`` the counts (in = kept + dropped), hours,
the CER quantiles and the model. The three files appear together, when complete.
A model that cannot write the manifest's text (characters outside a char model's labels, or text a
SentencePiece model writes as ``<unk>``, in more than 1 % of the lines) is refused before any transcription:
it would drop those lines for its own vocabulary's sake.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import time
from collections import Counter
from dataclasses import dataclass

import jiwer

from asr_transfer.errors import UserError
from asr_transfer.fileio import atomic_open_all, manifest_line, parse_manifest_line, write_json
from asr_transfer.inference.evaluate import (
    add_lang_argument,
    describe_references,
    scoring_language,
    scoring_references,
)
from asr_transfer.languages import text_rules
from asr_transfer.layout import rejects_beside, summary_beside
from asr_transfer.manifests.checks import EVALUATION_FIELDS, require_manifest
from asr_transfer.manifests.paths import audio_path, rebased_path
from asr_transfer.nemofile import check_nemo_file

DEFAULT_MAX_CER = 0.65  # NeMo Speech Data Processor's Common Voice threshold
# A few lines with a rare letter the model lacks are ordinary data; more means the model is not of this language.
UNWRITABLE_SHARE = 0.01
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
CHUNK = 256  # utterances per transcription call, so the progress bar moves on a large manifest
REJECT_COLUMNS = ("audio_filepath", "cer", "reference", "hypothesis", "reason")
CER_TOO_HIGH = "cer_above_max"


rejects_path = rejects_beside  # OUT.rejects.tsv
summary_path = summary_beside  # OUT.summary.json


@dataclass
class Utterance:
    line: str  # as written in the manifest (with its newline): kept lines are copied, not re-serialized
    entry: dict
    reference: str | None  # normalized; None when it cannot be scored
    skipped_because: str | None = None
    hypothesis: str = ""
    cer: float | None = None


@dataclass
class FilterResult:
    summary: dict
    utterances: list[Utterance]
    kept: list[bool]


def check_max_cer(value: float) -> float:
    if not (value > 0 and math.isfinite(value)):
        raise UserError(
            f"--max-cer {value} is outside (0, inf); give the highest CER an utterance may have and stay, "
            f"e.g. {DEFAULT_MAX_CER} (NeMo Speech Data Processor's Common Voice threshold)"
        )
    return value


def read_utterances(manifest: str, lang: str | None) -> tuple[list[Utterance], dict]:
    lines = []
    with open(manifest, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                lines.append((line if line.endswith("\n") else line + "\n", f"{manifest}:{number}"))
    entries = [parse_manifest_line(line, where, EVALUATION_FIELDS) for line, where in lines]
    references, report = scoring_references([str(entry["text"]) for entry in entries], lang)
    utterances = [
        Utterance(line, entry, reference)
        for (line, _), entry, reference in zip(lines, entries, references, strict=True)
    ]
    if any(reference is None for reference in references):
        rules = text_rules(lang)
        for utterance in utterances:
            if utterance.reference is None:
                utterance.skipped_because = rules.normalize(str(utterance.entry["text"])).reason
    return utterances, report


def unwritable_characters(model, references: list[str]) -> tuple[Counter, int]:
    """Characters of ``references`` the model cannot write, with the lines they occur in, and how many
    lines hold one. A char model writes its labels; a SentencePiece model writes what does not become
    ``<unk>``."""
    characters = sorted({char for reference in references for char in reference})
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is not None:
        unk = getattr(tokenizer, "unk_id", None)
        if unk is None or unk < 0:
            return Counter(), 0  # a tokenizer without <unk> (byte fallback) writes anything
        missing = {char for char in characters if char != " " and unk in tokenizer.text_to_ids(char)}
    else:
        labels = set(model.decoder.vocabulary)
        missing = {char for char in characters if char not in labels}
    lines_with = Counter()
    lines = 0
    for reference in references:
        found = missing.intersection(reference)
        lines_with.update(found)
        lines += bool(found)
    return lines_with, lines


def require_writable(model, references: list[str], model_path: str, manifest: str) -> int:
    """The number of lines holding text the model cannot write, when they are few; else one error."""
    missing, lines = unwritable_characters(model, references)
    if lines > UNWRITABLE_SHARE * len(references):
        shown = ", ".join(f"{char!r} ({count} lines)" for char, count in missing.most_common(12))
        more = f" and {len(missing) - 12} more" if len(missing) > 12 else ""
        raise UserError(
            f"the model {model_path} cannot write {lines} of the {len(references)} references of {manifest} "
            f"({lines / len(references):.0%}): its vocabulary lacks {shown}{more}, so those lines would be "
            f"dropped for the model's sake, not the data's; fine-tune it on this language first "
            f"(asr-transfer finetune, or a recipe's stages 1-3) and filter with that model"
        )
    return lines


def output_line(utterance: Utterance, manifest: str, out: str) -> str:
    """The input line, or, when OUT lies elsewhere and the audio path is relative, the line with the path
    that names the same file from OUT's folder (:func:`asr_transfer.manifests.paths.rebased_path`)."""
    path = utterance.entry["audio_filepath"]
    moved = rebased_path(path, manifest, out)
    if moved == path:
        return utterance.line
    return manifest_line({**utterance.entry, "audio_filepath": moved})


def cer_quantiles(values: list[float]) -> dict:
    import numpy

    if not values:
        return {}
    return {f"p{round(q * 100)}": round(float(numpy.quantile(values, q)), 4) for q in QUANTILES}


def filter_manifest(
    model_path: str,
    manifest: str,
    out: str,
    max_cer: float = DEFAULT_MAX_CER,
    lang: str | None = None,
    batch_size: int = 16,
    model=None,
    progress: bool = True,
) -> FilterResult:
    """Transcribe ``manifest`` with the model, keep the lines whose CER is at most ``max_cer`` in ``out`` and
    write the others to ``OUT.rejects.tsv``, the counts to ``OUT.summary.json``."""
    check_max_cer(max_cer)
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size} is not a positive number; give 1 or more")
    if model is None:
        check_nemo_file(model_path, "--model")  # a mistyped model fails before the manifest is read
    if os.path.realpath(out) == os.path.realpath(manifest):
        raise UserError(f"--out {out} is the input manifest; write the kept lines to another file")
    require_manifest(manifest, EVALUATION_FIELDS, audio="open", role="manifest to filter")
    lang = scoring_language(lang, model_path, model)
    utterances, reference_report = read_utterances(manifest, lang)
    scored = [utterance for utterance in utterances if utterance.reference is not None]
    if not scored:
        raise UserError(
            f"no reference of {manifest} can be scored{describe_references(reference_report)}; "
            f"check its text field and --lang"
        )
    from tqdm import tqdm

    from asr_transfer.inference.model import load_model, set_decoding, transcribe_paths

    started = time.time()
    model = model or load_model(model_path)
    unwritable = require_writable(model, [utterance.reference for utterance in scored], model_path, manifest)
    set_decoding(model, "greedy", model_path=model_path)
    with tqdm(total=len(scored), desc="filter", unit="utt", disable=not progress) as bar:
        for start in range(0, len(scored), CHUNK):
            chunk = scored[start : start + CHUNK]
            paths = [audio_path(utterance.entry["audio_filepath"], manifest) for utterance in chunk]
            for utterance, hypothesis in zip(chunk, transcribe_paths(model, paths, batch_size), strict=True):
                utterance.hypothesis = hypothesis
                utterance.cer = jiwer.cer(utterance.reference, hypothesis)
            bar.update(len(chunk))
    seconds = time.time() - started

    kept = [utterance.cer is not None and utterance.cer <= max_cer for utterance in utterances]
    cers = [utterance.cer for utterance in scored]
    if not any(kept):  # an empty training manifest would only fail later, in finetune, further from the cause
        raise UserError(
            f"no utterance of {manifest} has CER <= {max_cer:g} under {model_path} (lowest {min(cers):.3f}, "
            f"median {cer_quantiles(cers)['p50']:.3f}): the model does not read this data yet; train it longer "
            f"on it, or give a --max-cer above the CER of the lines you would keep"
        )
    with atomic_open_all([out, rejects_path(out)]) as (kept_file, rejects_file):
        rejects = csv.writer(rejects_file, delimiter="\t", lineterminator="\n")
        rejects.writerow(REJECT_COLUMNS)
        for utterance, keep in zip(utterances, kept, strict=True):
            if keep:
                kept_file.write(output_line(utterance, manifest, out))
                continue
            reason = CER_TOO_HIGH if utterance.cer is not None else f"reference_{utterance.skipped_because}"
            rejects.writerow(
                [
                    utterance.entry["audio_filepath"],
                    "" if utterance.cer is None else f"{utterance.cer:.4f}",
                    utterance.reference if utterance.reference is not None else str(utterance.entry["text"]),
                    utterance.hypothesis,
                    reason,
                ]
            )

    def hours(selected) -> float:
        return round(sum(float(utterance.entry.get("duration", 0) or 0) for utterance in selected) / 3600, 4)

    summary = {
        "model": model_path,
        "manifest": manifest,
        "out": out,
        "rejects": rejects_path(out),
        "decoding": "greedy",
        "max_cer": max_cer,
        "utterances_in": len(utterances),
        "kept": sum(kept),
        "dropped": len(utterances) - sum(kept),
        "dropped_cer_above_max": sum(cer > max_cer for cer in cers),
        "dropped_unscorable_reference": len(utterances) - len(scored),
        "hours_in": hours(utterances),
        "hours_kept": hours(utterance for utterance, keep in zip(utterances, kept, strict=True) if keep),
        "cer_mean": round(sum(cers) / len(cers), 4),
        "cer_quantiles": cer_quantiles(cers),
        "lines_with_unwritable_characters": unwritable,
        "references": reference_report,
        "seconds": round(seconds, 2),
    }
    write_json(summary_path(out), summary)
    return FilterResult(summary, utterances, kept)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transfer filter",
        description="Clean training data with a model (NeMo Speech Data Processor's CER filter): transcribe every "
        "utterance of a manifest (greedy, batched), score its CER against its reference (normalized as evaluate "
        "does), keep the lines with CER <= --max-cer in --out, unchanged and in order, and write every other "
        "line to OUT.rejects.tsv (audio_filepath, cer, reference, hypothesis, reason) and the counts and CER "
        "quantiles to OUT.summary.json. The model must read the manifest's language: a model whose vocabulary "
        "cannot write the text is refused.",
        epilog="Example: asr-transfer filter --model exp/de/finetune/run/v1/checkpoints/run.nemo "
        "--manifest exp/de/data/train.json --lang de --max-cer 0.65 --out exp/de/data/train_filtered.json",
    )
    parser.add_argument(
        "--model", required=True, help="the .nemo model that transcribes (one that reads this language)"
    )
    parser.add_argument(
        "--manifest", required=True, help="NeMo manifest to clean: audio_filepath and text on every line"
    )
    parser.add_argument(
        "--out", required=True, help="the kept lines; OUT.rejects.tsv and OUT.summary.json are written beside it"
    )
    parser.add_argument(
        "--max-cer",
        type=float,
        default=DEFAULT_MAX_CER,
        help=f"keep utterances whose CER is at most this (default {DEFAULT_MAX_CER}, NeMo SDP's Common Voice value)",
    )
    add_lang_argument(parser)
    parser.add_argument("--batch-size", type=int, default=16, help="utterances decoded together (default 16)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = filter_manifest(
        args.model,
        args.manifest,
        args.out,
        args.max_cer,
        lang=args.lang,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    summary = result.summary
    print(
        f"{args.manifest}: kept {summary['kept']} of {summary['utterances_in']} utterances (CER <= {args.max_cer:g}; "
        f"median CER {summary['cer_quantiles']['p50']:.3f}), dropped {summary['dropped']} -> {args.out}, "
        f"{summary['rejects']}, {summary_path(args.out)}"
    )
    return 0
