"""``asr-transfer prepare-cv``: a Common Voice locale (folder or tarball) to NeMo manifests.

In: ``CV_DIR_OR_TARBALL`` (an extracted release at any level, or the ``.tar.gz``), a language code.
Out: ``OUT_DIR/{train,dev,test}.json``, ``OUT_DIR/clips/`` (16 kHz mono WAV or FLAC),
``OUT_DIR/rejects.tsv`` and ``OUT_DIR/summary.json``; with ``--shar N`` the train split as Lhotse Shar
shards in ``OUT_DIR/train_shar`` instead of clip files. A rerun skips finished clips and shards.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from asr_transfer.errors import UserError
from asr_transfer.languages import load_language
from asr_transfer.manifests import common_voice as cv
from asr_transfer.manifests.options import add_build_arguments, build_options, report_summary
from asr_transfer.manifests.pipeline import BuildOptions, ManifestBuilder, SourceItem, train_shar_dir
from asr_transfer.manifests.shar import ShardOptions, add_shard_arguments, shard_flags_set, shard_options

# Held-out splits first, so that a clip listed twice is kept in dev/test and rejected from train.
SPLIT_ORDER = ("test", "dev", "train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transfer prepare-cv",
        description="Turn a Common Voice locale into NeMo manifests: decode every MP3, resample to 16 kHz "
        "mono, normalize text with the language file, filter, and account for every row.",
    )
    parser.add_argument("source", help="extracted Common Voice folder (any level) or the .tar.gz itself")
    parser.add_argument("out_dir", help="output folder: train/dev/test.json, clips/, rejects.tsv, summary.json")
    parser.add_argument(
        "--train-from-validated",
        action="store_true",
        help="add validated clips whose speaker and sentence appear in neither dev nor test to train",
    )
    parser.add_argument("--extract-dir", help="where a tarball is extracted (default: OUT_DIR/extracted); resumable")
    parser.add_argument(
        "--check-only", action="store_true", help="only find the locale (extracting a tarball) and count its rows"
    )
    parser.add_argument(
        "--force-lang",
        action="store_true",
        help="treat the release as --lang even though its folder name or its TSVs' locale column say otherwise "
        "(a renamed folder)",
    )
    parser.add_argument(
        "--shar",
        type=int,
        metavar="N",
        help="write the train split as N Lhotse Shar shards in OUT_DIR/train_shar straight from the decoder (no "
        "clip files; train.json then holds text and shard ids only); train with data.shar_path=OUT_DIR/train_shar",
    )
    add_shard_arguments(parser)
    parser.add_argument(
        "--print-shar-dir", action="store_true", help="print the shard folder --shar writes below OUT_DIR, and exit"
    )
    add_build_arguments(parser, shards=True)
    return parser


def check_source(
    source: str, out_dir: str, lang: str, extract_dir: str | None = None, force_lang: bool = False
) -> dict:
    """Find the locale folder and count the rows of each split, converting nothing."""
    load_language(lang)
    locale_dir = resolve_locale(source, out_dir, lang, extract_dir, force_lang)
    rows = {split: sum(1 for _ in cv.read_split(locale_dir, split)) for split in cv.RELEASED_SPLITS}
    clips = sum(1 for _ in (locale_dir / "clips").iterdir())
    return {"locale_dir": str(locale_dir), "rows": rows, "clip_files": clips}


def resolve_locale(
    source: str, out_dir: str, lang: str, extract_dir: str | None = None, force_lang: bool = False
) -> Path:
    """The locale folder of ``source`` (extracting a tarball first when given one), checked to be in
    ``lang`` unless ``force_lang``."""
    if os.path.isfile(source):
        if not (source.endswith((".tar.gz", ".tgz", ".tar"))):
            raise cv.NotCommonVoice(f"{source} is a file but not a .tar.gz: give the archive or its extracted folder")
        target = extract_dir or os.path.join(out_dir, "extracted")
        with tqdm(unit="file", desc="extract") as bar:
            cv.extract_tarball(source, target, progress=bar)
        source = target
    locale_dir = cv.find_locale_dir(source, lang)
    if not force_lang:
        cv.check_locale(locale_dir, lang)
    return locale_dir


def read_listed_durations(locale_dir: Path) -> dict[str, float]:
    """Clip durations from ``clip_durations.tsv`` (v16.1+), in seconds; empty for older releases."""
    path = locale_dir / "clip_durations.tsv"
    durations: dict[str, float] = {}
    if not path.is_file():
        return durations
    with open(path, encoding="utf-8") as handle:
        handle.readline()
        for line in handle:
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) >= 2 and fields[1].strip().isdigit():
                durations[cv.clip_file_name(fields[0])] = int(fields[1]) / 1000
    return durations


def iter_rows(locale_dir: Path, train_from_validated: bool, counts: dict) -> Iterator[cv.ClipRow]:
    for split in SPLIT_ORDER:
        yield from cv.read_split(locale_dir, split)
    if train_from_validated:
        held_out = [row for split in ("dev", "test") for row in cv.read_split(locale_dir, split)]
        train_paths = {cv.clip_file_name(row.path) for row in cv.read_split(locale_dir, "train")}
        yield from cv.extra_train_from_validated(locale_dir, held_out, counts, skip_paths=train_paths)


def source_items(locale_dir: Path, rows: Iterator[cv.ClipRow], durations: dict[str, float]) -> Iterator[SourceItem]:
    clips = locale_dir / "clips"
    for row in rows:
        name = cv.clip_file_name(row.path) if row.path else ""
        yield SourceItem(
            split=row.split,
            reference=row.path,
            source=str(clips / name),
            key=Path(name).stem,
            text=row.sentence,
            metadata=row.metadata(),
            problem=row.problem or ("" if row.path else "empty path field"),
            expected_duration=durations.get(name),
        )


def count_rows(locale_dir: Path, train_from_validated: bool) -> int:
    names = list(SPLIT_ORDER) + (["validated"] if train_from_validated else [])
    total = 0
    for name in names:
        with open(locale_dir / f"{name}.tsv", "rb") as handle:
            total += max(sum(1 for line in handle if line.strip()) - 1, 0)
    return total


def prepare_common_voice(
    source: str,
    out_dir: str,
    lang: str,
    options: BuildOptions | None = None,
    train_from_validated: bool = False,
    text_options: tuple[str, ...] = (),
    extract_dir: str | None = None,
    force_lang: bool = False,
    shar: ShardOptions | None = None,
) -> dict:
    language = load_language(lang).with_options(text_options)
    options = options or BuildOptions()
    locale_dir = resolve_locale(source, out_dir, lang, extract_dir, force_lang)
    counts: dict = {}
    rows = iter_rows(locale_dir, train_from_validated, counts)
    items = source_items(locale_dir, rows, read_listed_durations(locale_dir))
    builder = ManifestBuilder(out_dir, language, options, list(cv.RELEASED_SPLITS), shar=shar)
    sentences = locale_dir / "validated_sentences.tsv"  # v17+: text for language models (train-lm --prepared)
    extra = {
        "source": str(locale_dir),
        "train_from_validated": counts if train_from_validated else None,
        "validated_sentences": str(sentences) if sentences.is_file() else None,
    }
    return builder.run(items, total=count_rows(locale_dir, train_from_validated), extra_summary=extra)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.print_shar_dir:
        print(train_shar_dir(args.out_dir))
        return 0
    if args.check_only:
        found = check_source(args.source, args.out_dir, args.lang, args.extract_dir, args.force_lang)
        print(f"{found['locale_dir']}: rows {found['rows']}, {found['clip_files']} clip files")
        return 0
    ignored = [] if args.shar else shard_flags_set(args)
    if ignored:
        raise UserError(f"{', '.join(ignored)}: these shape the shards --shar writes; add --shar N or drop them")
    summary = prepare_common_voice(
        args.source,
        args.out_dir,
        args.lang,
        build_options(args),
        train_from_validated=args.train_from_validated,
        text_options=tuple(args.text_option),
        extract_dir=args.extract_dir,
        force_lang=args.force_lang,
        shar=shard_options(args, args.shar, "--shar") if args.shar else None,
    )
    report_summary(summary, args.out_dir)
    return 0
