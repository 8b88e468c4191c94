"""``asr-transfer prepare-folder``: custom data for domain adaptation to a NeMo manifest.

In, one of: (a) a folder of audio files with same-named ``.txt`` transcripts, (b) a CSV or TSV with a
path and a text column, (c) an existing NeMo manifest to re-validate. Audio may be any format and rate
soundfile reads. Out: ``OUT_DIR/<split>.json``, ``OUT_DIR/clips/``, ``rejects.tsv`` and
``summary.json``, with the same normalization, filters and accounting as ``prepare-cv``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

from asr_transfer.errors import InputError
from asr_transfer.fileio import read_manifest
from asr_transfer.languages import load_language
from asr_transfer.manifests.checks import TRAINING_FIELDS
from asr_transfer.manifests.common_voice import split_line, table_lines
from asr_transfer.manifests.options import add_build_arguments, build_options, report_summary
from asr_transfer.manifests.paths import audio_path
from asr_transfer.manifests.pipeline import BuildOptions, ManifestBuilder, SourceItem

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif", ".au", ".w64", ".caf"}
PATH_COLUMNS = ("audio_filepath", "path", "audio", "file", "filename", "wav")
TEXT_COLUMNS = ("text", "sentence", "transcript", "transcription", "normalized_text")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transfer prepare-folder",
        description="Build a NeMo manifest from a folder of audio + .txt transcripts, a CSV/TSV with path and "
        "text columns, or an existing manifest (re-validated), with the same checks as prepare-cv.",
    )
    parser.add_argument("source", help="folder, .csv/.tsv table, or .json/.jsonl NeMo manifest")
    parser.add_argument("out_dir", help="output folder")
    parser.add_argument("--split", default="train", help="name of the manifest written (default train)")
    parser.add_argument("--path-column", help=f"table column with audio paths (default: first of {PATH_COLUMNS})")
    parser.add_argument("--text-column", help=f"table column with transcripts (default: first of {TEXT_COLUMNS})")
    parser.add_argument(
        "--no-convert",
        action="store_true",
        help="keep 16 kHz mono source audio where it is, under its absolute path (only decode it to validate and "
        "measure); audio of other rates or channel counts is still converted into OUT_DIR/clips/",
    )
    add_build_arguments(parser)
    return parser


def _item(split: str, reference: str, audio: Path, base: Path, text: str | None, metadata: dict | None = None):
    key = _output_key(audio, base)
    problem = "" if text is not None else "no transcript"
    # Absolute: a relative SOURCE is the caller's (the current directory's), and --no-convert writes the
    # path into a manifest in OUT_DIR, whose relative paths would be OUT_DIR's (asr_transfer.manifests.paths).
    return SourceItem(split, reference, os.path.abspath(audio), key, text or "", metadata or {}, problem)


def _output_key(audio: Path, base: Path) -> str:
    """Output name below clips/: the path relative to the input, so same-named files in subfolders differ."""
    try:
        relative = audio.resolve().relative_to(base.resolve())
    except ValueError:
        relative = Path(*audio.resolve().parts[1:])
    return str(relative.with_suffix(""))


def folder_items(folder: Path, split: str) -> Iterator[SourceItem]:
    for audio in sorted(path for path in folder.rglob("*") if path.suffix.lower() in AUDIO_SUFFIXES):
        transcript = audio.with_suffix(".txt")
        text = transcript.read_text(encoding="utf-8").strip() if transcript.is_file() else None
        yield _item(split, str(audio.relative_to(folder)), audio, folder, text)


def _pick_column(header: list[str], wanted: str | None, defaults: tuple[str, ...], role: str, path: Path) -> str:
    if wanted:
        if wanted not in header:
            raise InputError(f"{path} has no column {wanted!r}; name one of its columns {header}")
        return wanted
    for name in defaults:
        if name in header:
            return name
    raise InputError(f"{path}: no {role} column among {header}; name it with --{role}-column")


def table_items(table: Path, split: str, path_column: str | None, text_column: str | None) -> Iterator[SourceItem]:
    delimiter = "\t" if table.suffix.lower() == ".tsv" else ","
    # TSVs are read unquoted like Common Voice's; CSVs use standard quoting, which commas require.
    quoted = delimiter == ","
    with open(table, encoding="utf-8", newline="") as handle:
        first = handle.readline()
        if not first:
            return
        header = split_line(first.rstrip("\r\n"), delimiter, quoted) or []
        path_name = _pick_column(header, path_column, PATH_COLUMNS, "path", table)
        text_name = _pick_column(header, text_column, TEXT_COLUMNS, "text", table)
        path_index, text_index = header.index(path_name), header.index(text_name)
        for line in table_lines(handle, len(header), delimiter, quoted):
            row = line.fields
            if not line.problem and not any(field.strip() for field in row):
                continue
            reference = row[path_index].strip() if path_index < len(row) else ""
            problem = line.problem or ("" if reference else "empty path field")
            if problem:
                # A malformed line's path field may be any piece of text: it is neither opened nor a key.
                yield SourceItem(split, reference or f"line {line.number}", "", f"line-{line.number}", "", {}, problem)
                continue
            # a table's relative paths are its folder's, as a manifest's are
            yield _item(split, reference, Path(audio_path(reference, table)), table.parent, row[text_index])


def manifest_items(manifest: Path, split: str) -> Iterator[SourceItem]:
    for entry in read_manifest(manifest):
        reference = str(entry.get("audio_filepath", ""))
        audio = Path(audio_path(reference, manifest))
        metadata = {key: value for key, value in entry.items() if key not in TRAINING_FIELDS}
        yield _item(split, reference, audio, manifest.parent, entry.get("text"), metadata)


def source_items(source: Path, split: str, path_column: str | None = None, text_column: str | None = None):
    if source.is_dir():
        return folder_items(source, split)
    if not source.is_file():
        raise InputError(f"{source} does not exist; check the path")
    suffix = source.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return table_items(source, split, path_column, text_column)
    if suffix in (".json", ".jsonl"):
        return manifest_items(source, split)
    raise InputError(f"{source} is neither a folder, a .csv/.tsv table nor a .json manifest; give one of those")


def prepare_folder(
    source: str,
    out_dir: str,
    lang: str,
    options: BuildOptions | None = None,
    split: str = "train",
    path_column: str | None = None,
    text_column: str | None = None,
    text_options: tuple[str, ...] = (),
) -> dict:
    language = load_language(lang).with_options(text_options)
    items = source_items(Path(source), split, path_column, text_column)
    builder = ManifestBuilder(out_dir, language, options or BuildOptions(), [split])
    return builder.run(items, extra_summary={"source": os.path.abspath(source)})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    summary = prepare_folder(
        args.source,
        args.out_dir,
        args.lang,
        build_options(args, convert=not args.no_convert),
        split=args.split,
        path_column=args.path_column,
        text_column=args.text_column,
        text_options=tuple(args.text_option),
    )
    report_summary(summary, args.out_dir)
    return 0
