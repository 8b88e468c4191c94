"""``asr-transfer train-tokenizer``: manifests to a character vocabulary or a SentencePiece folder.

In: one or more NeMo manifests, the language, the kind (``char``, ``bpe``, ``unigram``) and for
SentencePiece the vocabulary size. Text is normalized by the language file first (a no-op on
``prepare-*`` output; a manifest from elsewhere may hold full-width forms, NFD letters or punctuation,
which SentencePiece's own NFKC would turn into pieces the text never contains); a line the language
file rejects (digits, another script) fails the command, as the manifest was not built for it. Out:
``OUT_ROOT/<lang>/char/vocab.txt`` (one label per line, space first), or
``OUT_ROOT/<lang>/spe_<kind>_v<N>/{tokenizer.model, tokenizer.vocab, vocab.txt}``, the folder layout
``EncDecCTCModelBPE.change_vocabulary(dir, "bpe")`` loads. The same input gives the same bytes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from asr_transfer.errors import UserError
from asr_transfer.fileio import atomic_open, read_manifest
from asr_transfer.languages import Language, is_han, load_language
from asr_transfer.layout import CHAR, TOKENIZER_KINDS, vocab_dir, vocab_done_file
from asr_transfer.logs import native_stderr_quiet
from asr_transfer.manifests.checks import require_manifest

KINDS = TOKENIZER_KINDS


class TokenizerError(UserError):
    pass


def manifest_texts(manifests: list[str], language: Language, counts: Counter | None = None) -> Iterator[str]:
    """Every manifest line's text as ``language`` normalizes it; ``counts["changed"]`` counts the lines
    it changed. A line it rejects (digits, another script) means the manifest was not built for this
    language: a :class:`TokenizerError` with the count of such lines and the first, read to the end."""
    counts = Counter() if counts is None else counts
    rejected, first = Counter(), None
    for manifest in manifests:
        for number, entry in enumerate(read_manifest(manifest, fields=("text",)), start=1):
            normalized = language.normalize(entry["text"])
            if normalized.text is None:
                rejected[normalized.reason] += 1
                first = first or f"{manifest}:{number} {entry['text']!r}: {normalized.reason} {normalized.detail!r}"
                continue
            counts["changed"] += normalized.text != entry["text"]
            yield normalized.text
    if rejected:
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(rejected.items()))
        raise TokenizerError(
            f"{sum(rejected.values())} manifest lines hold text the {language.code} language file rejects "
            f"({reasons}; first {first}): characters outside the {language.code} alphabet; build the manifests "
            f"with --lang {language.code} (prepare-cv or prepare-folder), which lists each in rejects.tsv"
        )


def report_normalization(counts: Counter, lang: str) -> None:
    if counts["changed"]:
        print(f"train-tokenizer: {counts['changed']} lines normalized by the {lang} language file", file=sys.stderr)


def require_text(manifests: list[str]) -> None:
    """Every manifest exists, parses and has text on every line, and together they hold some text."""
    for manifest in manifests:
        require_manifest(manifest, fields=("text",), audio=None, role="tokenizer manifest")


def read_labels(vocab_file: str | os.PathLike) -> list[str]:
    """Labels of a ``vocab.txt`` written by :func:`train_char` (a line may be a lone space)."""
    with open(vocab_file, encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle if line != "\n"]


def char_labels(language: Language, characters: Counter) -> list[str]:
    """The alphabet's labels; for Han languages the characters seen, as Han cannot be listed up front."""
    labels = language.label_set()
    if language.han:
        labels += sorted(char for char in characters if is_han(char))
    unknown = sorted(char for char in characters if char not in labels)
    if unknown:
        raise TokenizerError(
            f"manifest text holds characters outside the {language.code} alphabet: {''.join(unknown)!r}; "
            f"build the manifests with --lang {language.code}"
        )
    return labels


def train_char(manifests: list[str], lang: str, root: str | os.PathLike) -> Path:
    language = load_language(lang)
    characters, counts = Counter(), Counter()
    for text in manifest_texts(manifests, language, counts):
        characters.update(text)
    report_normalization(counts, lang)
    labels = char_labels(language, characters)
    vocab_file = vocab_done_file(vocab_dir(root, lang, CHAR), CHAR)
    with atomic_open(vocab_file) as handle:
        handle.writelines(f"{label}\n" for label in labels)
    return vocab_file.parent


def _spm_vocab_size(folder: Path) -> int:
    with open(folder / "tokenizer.vocab", encoding="utf-8") as handle:
        return sum(1 for _ in handle)


def train_sentencepiece(manifests: list[str], lang: str, kind: str, vocab_size: int, root: str | os.PathLike) -> Path:
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model

    language = load_language(lang)
    final = vocab_dir(root, lang, kind, vocab_size)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        corpus = work / "text.txt"
        counts = Counter()
        with open(corpus, "w", encoding="utf-8") as handle:
            handle.writelines(f"{text}\n" for text in manifest_texts(manifests, language, counts))
        report_normalization(counts, lang)
        if corpus.stat().st_size == 0:
            raise TokenizerError(
                f"no manifest line is left after normalization by the {lang} language file; check --lang"
            )
        model_dir = work / "model"
        try:
            with native_stderr_quiet():
                create_spt_model(
                    str(corpus),
                    vocab_size,
                    sample_size=-1,
                    do_lower_case=False,
                    tokenizer_type=kind,
                    output_dir=str(model_dir),
                    character_coverage=language.character_coverage,
                )
        except RuntimeError as error:
            raise TokenizerError(_explain_spm_failure(str(error), vocab_size)) from None
        _drop_training_paths(model_dir / "tokenizer.model")
        reached = _spm_vocab_size(model_dir)
        if reached < vocab_size:
            raise TokenizerError(
                f"SentencePiece reached only {reached} pieces of the {vocab_size} asked on this text: "
                f"the largest vocabulary it can build is {reached}; use --vocab-size {reached} or less"
            )
        if final.exists():
            shutil.rmtree(final)
        os.replace(model_dir, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _drop_training_paths(model_file: Path) -> None:
    """SentencePiece records its (temporary) input and output paths in the model; keep names only,
    so that the same text gives the same bytes wherever it was trained."""
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(model_file.read_bytes())
    inputs = [os.path.basename(path) for path in model.trainer_spec.input]
    del model.trainer_spec.input[:]
    model.trainer_spec.input.extend(inputs)
    model.trainer_spec.model_prefix = os.path.basename(model.trainer_spec.model_prefix)
    model_file.write_bytes(model.SerializeToString())


def _explain_spm_failure(message: str, vocab_size: int) -> str:
    too_small = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", message)
    if too_small:
        return f"--vocab-size {vocab_size} is below the {too_small.group(2)} characters of the text; ask for more"
    too_large = re.search(r"<= (\d+)", message)
    if too_large:
        return f"--vocab-size {vocab_size} is too large for this text: the largest size is {too_large.group(1)}"
    return f"SentencePiece failed: {message.strip().splitlines()[-1] if message.strip() else message}"


def train_tokenizer(
    manifests: list[str], lang: str, kind: str, out_root: str | os.PathLike, vocab_size: int | None = None
) -> Path:
    if kind not in KINDS:
        raise TokenizerError(f"--kind {kind} is unknown; use one of {', '.join(KINDS)}")
    require_text(manifests)
    if kind == CHAR:
        return train_char(manifests, lang, out_root)
    if not vocab_size or vocab_size < 2:
        raise TokenizerError(f"--kind {kind} needs --vocab-size N (e.g. 128 for small data, 1024 for Common Voice)")
    return train_sentencepiece(manifests, lang, kind, vocab_size, out_root)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transfer train-tokenizer",
        description="Train a CTC target vocabulary from normalized manifests: a character list (vocab.txt) or a "
        "SentencePiece BPE/unigram model in the folder layout NeMo's change_vocabulary loads.",
        epilog="Example: asr-transfer train-tokenizer exp/de/tokenizers --manifest exp/de/data/train.json "
        "--lang de --kind bpe --vocab-size 128  (writes exp/de/tokenizers/de/spe_bpe_v128)",
    )
    parser.add_argument("out_root", help="root folder; output goes to OUT_ROOT/<lang>/char or spe_<kind>_v<N>")
    parser.add_argument("--manifest", action="append", help="NeMo manifest with a text field (repeatable)")
    parser.add_argument("--lang", required=True, help="language code of the text")
    parser.add_argument("--kind", choices=KINDS, default=CHAR, help=f"{', '.join(KINDS)} (default {CHAR})")
    parser.add_argument("--vocab-size", type=int, help="SentencePiece vocabulary size (bpe/unigram)")
    parser.add_argument(
        "--print-dir", action="store_true", help="print the folder these options name and exit, training nothing"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.print_dir:
        print(vocab_dir(args.out_root, args.lang, args.kind, args.vocab_size))
        return 0
    if not args.manifest:
        parser.error("give at least one --manifest")
    folder = train_tokenizer(args.manifest, args.lang, args.kind, args.out_root, args.vocab_size)
    print(f"wrote {folder}")
    return 0
