"""``asr-transfer train-lm``: a token-level n-gram LM from text, for NeMo's CTC beam search.

In: text sources (manifest transcripts; plain text files, one sentence per line; Common Voice's
``validated_sentences.tsv``), manifests whose sentences must not leak into the LM (``--exclude``: the
recipes pass their dev and test), the ``.nemo`` model whose tokens the LM predicts (characters or
SentencePiece pieces) and the order. All text is normalized by the language file first (``--lang``;
raw text files and Common Voice sentences require it; manifest text without it gets NFKC, lower case
and punctuation removed). Out: ``OUT.arpa`` (modified
Kneser-Ney, ``asr_transfer.lm.ngram``), ``OUT.arpa.rejects.tsv`` (every sentence left out, with its
source, line and reason: excluded, not normalizable, or a character the model lacks) and
``OUT.arpa.json`` (what was read, removed and counted, and which vocabulary the LM is over: the model and
its ``vocabulary_digest``, which decoding compares with its own model's). Text streams through; see ``ngram``
for memory.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from asr_transfer.errors import UserError
from asr_transfer.fileio import atomic_open, read_manifest, write_json
from asr_transfer.languages import ANY_LANGUAGE
from asr_transfer.layout import SUMMARY_FILE, rejects_beside, summary_path
from asr_transfer.lm.ngram import EmptyCorpus, write_arpa
from asr_transfer.manifests.checks import require_manifest
from asr_transfer.manifests.common_voice import split_line, table_lines


@dataclass(frozen=True)
class Sentence:
    source: str
    line: int
    text: str
    raw: bool  # needs the language's normalization
    problem: str = ""  # why the line is no whole sentence (a row cut by a line break); it is rejected


def manifest_sentences(path: str) -> Iterator[Sentence]:
    for number, entry in enumerate(read_manifest(path, ("text",)), start=1):
        yield Sentence(path, number, entry["text"], raw=False)


def text_file_sentences(path: str) -> Iterator[Sentence]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield Sentence(path, number, line.strip(), raw=True)


def cv_sentences(path: str) -> Iterator[Sentence]:
    """Common Voice's validated_sentences.tsv, which (unlike the clip TSVs) is quoted CSV-style. A line
    that is no whole row (a sentence cut by a line break) comes with its ``problem``, never as a sentence."""
    with open(path, encoding="utf-8", newline="") as handle:
        header = split_line(handle.readline().rstrip("\r\n"), quoted=True) or []
        if "sentence" not in header:
            raise UserError(f"{path} has no 'sentence' column; give Common Voice's validated_sentences.tsv")
        column = header.index("sentence")
        for line in table_lines(handle, len(header), quoted=True):
            if line.problem:
                yield Sentence(path, line.number, "\t".join(line.fields), raw=True, problem=line.problem)
            else:
                yield Sentence(path, line.number, line.fields[column], raw=True)


def excluded_texts(manifests: list[str], normalize=None) -> set[str]:
    """The sentences of ``manifests`` in the form the LM's sentences are compared in (normalized)."""
    normalize = normalize or ANY_LANGUAGE.normalize
    texts = set()
    for path in manifests:
        require_manifest(path, ("text",), audio=None, role="--exclude manifest")
        for entry in read_manifest(path, ("text",)):
            texts.add(normalize(entry["text"]).text or entry["text"])
    return texts


def prepared_sources(data_dir: str) -> dict:
    """What a ``prepare-cv`` folder offers an LM: its train.json, its dev.json and test.json to exclude,
    the release's validated_sentences.tsv (v17+) and the language that normalizes it."""
    import json

    from asr_transfer.manifests.pipeline import manifest_path

    summary_file = summary_path(data_dir)
    if not summary_file.is_file():
        raise UserError(
            f"--prepared {data_dir} holds no {SUMMARY_FILE}; give an output folder of asr-transfer prepare-cv"
        )
    with open(summary_file, encoding="utf-8") as handle:
        summary = json.load(handle)
    sentences = summary.get("validated_sentences")
    return {
        "manifests": [manifest_path(data_dir, "train")],
        # A split that kept nothing (a small locale's header-only dev.tsv) has nothing to exclude.
        "exclude": [
            manifest_path(data_dir, split)
            for split in ("dev", "test")
            if summary.get("splits", {}).get(split, {}).get("kept", 1)
        ],
        "cv_sentence_files": [sentences] if sentences and os.path.isfile(sentences) else [],
        "lang": summary.get("language"),
    }


def model_tokenizer(model) -> tuple[Callable[[str], list[int] | None], int]:
    """The model's text -> token ids (None when a character is not in a char model's labels), and its
    vocabulary size without the blank."""
    vocabulary = list(model.decoder.vocabulary)
    if getattr(model, "tokenizer", None) is not None:
        return model.tokenizer.text_to_ids, len(vocabulary)
    index = {label: number for number, label in enumerate(vocabulary)}

    def char_ids(text: str) -> list[int] | None:
        ids = [index.get(char) for char in text]
        return None if None in ids else ids

    return char_ids, len(vocabulary)


def model_vocabulary(model) -> tuple[str, list[str]]:
    """The model's tokens in id order, blank excluded: 'char' labels, or a tokenizer's 'subword' pieces."""
    size = len(model.decoder.vocabulary)
    if getattr(model, "tokenizer", None) is not None:
        return "subword", list(model.tokenizer.ids_to_tokens(list(range(size))))
    return "char", list(model.decoder.vocabulary)


def vocabulary_digest(model) -> str:
    """What an LM's token ids mean: two models agree on it exactly when an LM built for one serves the other
    (equal sizes alone do not: token 3 may be another character)."""
    import hashlib
    import json

    kind, tokens = model_vocabulary(model)
    return "sha256:" + hashlib.sha256(json.dumps([kind, tokens], ensure_ascii=False).encode("utf-8")).hexdigest()


def record_path(lm_path: str) -> str:
    return lm_path + ".json"


def lm_record(lm_path: str) -> dict | None:
    """The vocabulary ``train-lm`` recorded for an LM ({"kind", "size", "digest"} and the model it was built
    with), or None for an LM without one (written by hand, or by a train-lm older than the record)."""
    import json

    path = record_path(lm_path)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            report = json.load(handle)
    except (OSError, ValueError) as error:
        raise UserError(
            f"{path}, train-lm's record of which model {lm_path} was built for, is unreadable ({error}); "
            "rebuild the LM with asr-transfer train-lm"
        ) from None
    vocabulary = report.get("vocabulary") if isinstance(report, dict) else None
    if not isinstance(vocabulary, dict) or "digest" not in vocabulary:
        return None
    return {**vocabulary, "model": report.get("model")}


@dataclass
class Selection:
    read: Counter
    excluded: int = 0
    rejected: Counter = None
    kept: int = 0


def selected_token_ids(sources, exclude: set[str], normalize, tokenize, rejects, selection: Selection):
    """Token ids of every usable sentence; each other one is written to ``rejects`` with its reason."""
    for sentence in sources:
        selection.read[sentence.source] += 1
        text = sentence.text
        if sentence.problem:
            selection.rejected["malformed row"] += 1
            rejects.writerow([sentence.source, sentence.line, f"malformed row: {sentence.problem}", text])
            continue
        if sentence.raw and normalize is None:
            raise UserError(
                f"{sentence.source} holds raw text; give --lang so that it is normalized like the manifests"
            )
        # Manifest text too: one not made by prepare-* may hold punctuation or another Unicode form.
        normalized = (normalize or ANY_LANGUAGE.normalize)(text)
        if normalized.text is None:
            selection.rejected[f"not normalizable: {normalized.reason}"] += 1
            rejects.writerow([sentence.source, sentence.line, f"not normalizable: {normalized.reason}", text])
            continue
        text = normalized.text
        if text in exclude:
            selection.excluded += 1
            rejects.writerow([sentence.source, sentence.line, "excluded (in an --exclude manifest)", text])
            continue
        ids = tokenize(text)
        if not ids:
            reason = "character not in the model's labels" if ids is None else "no tokens"
            selection.rejected[reason] += 1
            rejects.writerow([sentence.source, sentence.line, reason, text])
            continue
        selection.kept += 1
        yield ids


def train_lm(
    model_path: str,
    out_path: str,
    order: int = 4,
    manifests: list[str] | None = None,
    text_files: list[str] | None = None,
    cv_sentence_files: list[str] | None = None,
    exclude: list[str] | None = None,
    lang: str | None = None,
) -> dict:
    from asr_transfer.inference.model import load_model
    from asr_transfer.languages import load_language

    if order < 2:
        raise UserError(f"--order {order} is too low; give 2 or more (NeMo's n-gram decoder needs bigrams)")
    manifests, text_files, cv_sentence_files = manifests or [], text_files or [], cv_sentence_files or []
    if not (manifests or text_files or cv_sentence_files):
        raise UserError("no text given; pass --manifest, --text or --cv-sentences")
    for path in manifests:
        require_manifest(path, ("text",), audio=None, role="--manifest")
    for path in [*text_files, *cv_sentence_files]:
        if not os.path.isfile(path):
            raise UserError(f"{path} does not exist; give a text file or Common Voice's validated_sentences.tsv")
    normalize = load_language(lang).normalize if lang else None
    blocked = excluded_texts(exclude or [], normalize)
    model = load_model(model_path, "cpu")
    tokenize, vocab_size = model_tokenizer(model)
    kind, _ = model_vocabulary(model)
    vocabulary = {"kind": kind, "size": vocab_size, "digest": vocabulary_digest(model)}

    def sources():
        for path in manifests:
            yield from manifest_sentences(path)
        for path in text_files:
            yield from text_file_sentences(path)
        for path in cv_sentence_files:
            yield from cv_sentences(path)

    selection = Selection(read=Counter(), rejected=Counter())
    if os.path.exists(record_path(out_path)):  # a run killed after the new ARPA must not leave the old record
        os.remove(record_path(out_path))
    with atomic_open(rejects_beside(out_path)) as handle:
        rejects = csv.writer(handle, delimiter="\t", lineterminator="\n")
        rejects.writerow(["source", "line", "reason", "text"])
        try:
            sentences = selected_token_ids(sources(), blocked, normalize, tokenize, rejects, selection)
            summary = write_arpa(sentences, order, vocab_size, out_path)
        except EmptyCorpus:
            summary = None
    if summary is None:  # after the rejects file is complete, so that it says why
        raise UserError(f"no sentence is left to train the LM on (see {rejects_beside(out_path)}); give more text")
    report = {
        "model": model_path,
        "order": order,
        "vocab_size": vocab_size,
        "vocabulary": vocabulary,  # decoding refuses the LM for a model whose digest differs
        "read": dict(selection.read),
        "excluded": selection.excluded,
        "rejected": dict(selection.rejected),
        "sentences": selection.kept,
        "ngrams": summary.ngrams,
    }
    write_json(record_path(out_path), report)
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transfer train-lm",
        description="A token-level n-gram language model (interpolated modified Kneser-Ney) over a model's own "
        "tokens, characters or SentencePiece pieces, written as the ARPA file that NeMo's beam_batch CTC decoder "
        "(NGramGPULanguageModel) reads. Built in Python, streaming, without KenLM. Sentences of --exclude "
        "manifests are removed, so that dev and test never leak into the LM.",
        epilog="Example: asr-transfer train-lm --manifest exp/de/data/train.json --cv-sentences "
        "cv/de/validated_sentences.tsv --lang de --exclude exp/de/data/dev.json --exclude exp/de/data/test.json "
        "--model exp/de/de_model.nemo --order 6 exp/de/lm/char_6gram.arpa",
    )
    parser.add_argument("out", metavar="OUT.arpa", help="the ARPA file to write")
    parser.add_argument("--model", required=True, help="the .nemo model whose tokens the LM predicts")
    parser.add_argument("--order", type=int, default=4, help="n-gram order, 2 or more (default 4)")
    parser.add_argument("--manifest", action="append", default=[], help="NeMo manifest; its text (repeatable)")
    parser.add_argument("--text", action="append", default=[], help="text file, one sentence a line (repeatable)")
    parser.add_argument("--cv-sentences", action="append", default=[], help="Common Voice validated_sentences.tsv")
    parser.add_argument("--exclude", action="append", default=[], help="manifest whose sentences are removed")
    parser.add_argument("--lang", help="language file that normalizes raw text (--text, --cv-sentences)")
    parser.add_argument(
        "--prepared",
        metavar="DATA_DIR",
        help="a prepare-cv output folder: adds its train.json, excludes its dev.json and test.json, and adds the "
        "release's validated_sentences.tsv when it has one (v17+), normalized by the folder's language",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prepared = prepared_sources(args.prepared) if args.prepared else {}
    report = train_lm(
        args.model,
        args.out,
        args.order,
        args.manifest + prepared.get("manifests", []),
        args.text,
        args.cv_sentences + prepared.get("cv_sentence_files", []),
        args.exclude + prepared.get("exclude", []),
        args.lang or prepared.get("lang"),
    )
    rejected = sum(report["rejected"].values())
    print(
        f"{args.out}: {report['sentences']} sentences, n-grams {report['ngrams']}; removed {report['excluded']} "
        f"found in --exclude, rejected {rejected} (see {rejects_beside(args.out)})",
        file=sys.stderr,
    )
    return 0
