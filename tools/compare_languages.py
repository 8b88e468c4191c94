#!/usr/bin/env python
"""Language files written by ``new-language`` from synthetic releases, against the hand-written ones.

In: language codes with a grammar (default de, es, ru, yue), a clip count per synthetic release
(``synth-cv --faults``, made in ``--work`` and reused), and optionally real releases as ``CODE=PATH``
(``--real``, e.g. the Twi subset in tests/data/cv_tw). Out: a Markdown note (``--out``, default
stdout): per language, the letters both files hold, those only one holds and why (absent from the
synthetic text, rarer than the coverage, an apostrophe the grammar never writes), and the other keys
side by side. This is how docs/languages/generated_vs_handwritten.md is made.
"""

from __future__ import annotations

import argparse
import sys
import time
import unicodedata
from pathlib import Path

from asr_transfer.fileio import atomic_open
from asr_transfer.languages import UnknownLanguage, load_language
from asr_transfer.languages.derive import APOSTROPHE_SHARE, Derived, derive_language, shown
from asr_transfer.synth.synth_cv import synth_cv

KEYS = ("metric", "han", "character_coverage", "min_chars_per_second", "max_chars_per_second", "maps")


def letters(alphabet: str) -> str:
    return " ".join(shown(char) for char in sorted(alphabet) if char != " ") or "(none)"


def why_missing(char: str, derived: Derived) -> str:
    if char == "'":
        share, threshold = 100 * derived.apostrophe_share, 100 * APOSTROPHE_SHARE
        return f"apostrophe between letters in {share:.2f} % of sentences (< {threshold:.1f} %)"
    count = derived.letter_counts.get(char, 0)
    if count == 0:
        return "not in the text"
    return f"rare: {count} occurrences in {derived.letter_sentences[char]} sentences"


def section(code: str, source: str, derived: Derived, seconds: float) -> list[str]:
    generated = derived.language
    read = f"Release: {source}; {len(derived.sentences)} distinct sentences, derived in {seconds:.1f} s."
    lines = [f"## {code}", "", read, ""]
    try:
        handwritten = load_language(code)
    except UnknownLanguage:  # a locale without a built-in file (tw): the generated file only
        handwritten = None
    lines += [f"- generated alphabet: `{generated.alphabet}`"]
    if handwritten is None:
        lines += ["- no hand-written file to compare with"]
    else:
        lines += [f"- hand-written alphabet: `{handwritten.alphabet}`"]
        both = set(generated.alphabet) & set(handwritten.alphabet)
        extra = sorted(set(generated.alphabet) - set(handwritten.alphabet))
        missing = sorted(set(handwritten.alphabet) - set(generated.alphabet))
        lines += [f"- in both: {letters(''.join(both))}", f"- only generated: {letters(''.join(extra))}"]
        reasons: dict[str, list[str]] = {}
        for char in missing:
            reasons.setdefault(why_missing(char, derived), []).append(char)
        lines += ["- only hand-written:" + ("" if missing else " (none)")]
        lines += [f"  - {letters(''.join(chars))}: {why}" for why, chars in reasons.items()]
        explained = not extra and not any(why.startswith("rare") for why in reasons)
        verdict = "agrees" if explained else "differs"
        lines += [
            f"- verdict: {verdict}: the generated alphabet adds nothing"
            + (", and lacks only what the synthetic text does not write" if explained else "")
        ]
        lines += ["", "| key | generated | hand-written |", "|---|---|---|"]
        for key in KEYS:
            ours, theirs = getattr(generated, key), getattr(handwritten, key)
            mark = "" if ours == theirs else " (differs)"
            lines.append(f"| {key} | {ours}{mark} | {theirs} |")
    rejected = ", ".join(
        f"{shown(char)} ({unicodedata.name(char, '?').title()}, {derived.letter_counts[char]}x)"
        for char in derived.rejected_letters
    )
    outcomes = ", ".join(f"{name} {count}" for name, count in sorted(derived.outcomes.items()))
    lines += ["", f"- rejected letters: {rejected or 'none'}", f"- sentences: {outcomes}", ""]
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--langs", nargs="+", default=["de", "es", "ru", "yue"], help="languages to synthesize")
    parser.add_argument("--clips", type=int, default=200, help="clips per synthetic release (default 200)")
    parser.add_argument("--work", default="/tmp/compare_languages", help="where the releases are made and reused")
    parser.add_argument("--real", nargs="*", default=[], metavar="CODE=PATH", help="real releases to add")
    parser.add_argument("--seed", type=int, default=1, help="synth-cv seed")
    parser.add_argument("--out", help="the Markdown note to write (default: stdout)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    lines = [
        "# Generated language files against the hand-written ones",
        "",
        f"Made by `tools/compare_languages.py --clips {args.clips}`: each language's synthetic release "
        f"(`synth-cv --lang CODE --clips {args.clips} --faults --seed {args.seed}`, whose validated_sentences.tsv "
        "also lists as many sentences nobody recorded) goes through `asr-transfer new-language`, and the "
        "file it writes is compared with the hand-written asr_transfer/languages/CODE.yaml. The synthetic "
        "text comes from each file's small grammar, so a letter the grammar never writes cannot be found; "
        "`--faults` plants a digit sentence, a foreign-script sentence and an empty one, which the generated "
        "file must reject.",
        "",
        "Keys the text cannot decide take fixed defaults: `min_chars_per_second` 1.0 and "
        "`max_chars_per_second` 30.0 (de.yaml's values) for every script, where yue.yaml has 0.0 and 15.0; "
        "`maps` holds the curly apostrophes only when the apostrophe itself is kept (hand-written de.yaml and "
        "yue.yaml map them although none of their grammars writes one). Sentences are counted once each: the "
        "synthetic 200-clip releases hold 420 distinct sentences.",
        "",
    ]
    for code in args.langs:
        work = Path(args.work) / f"{code}_{args.clips}_{args.seed}"
        if not any(work.glob("cv-corpus-*/*/validated_sentences.tsv")):
            synth_cv(code, args.clips, str(work), seed=args.seed, faults=True, progress=False)
        started = time.perf_counter()
        derived = derive_language(code, str(work))
        lines += section(code, f"synthetic, {args.clips} clips", derived, time.perf_counter() - started)
    for item in args.real:
        code, _, path = item.partition("=")
        started = time.perf_counter()
        derived = derive_language(code, path)
        lines += section(code, f"real, {path}", derived, time.perf_counter() - started)
    text = "\n".join(lines).rstrip() + "\n"
    if args.out:
        with atomic_open(args.out) as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    from asr_transfer.errors import run_tool

    sys.exit(run_tool(main))
