"""Reading a Common Voice release: locating the locale folder, reading clip TSVs, choosing splits.

In: an extracted Common Voice folder (any level: the corpus root, ``cv-corpus-<ver>-<date>``, or the
locale folder) or the ``.tar.gz`` itself. Out: :class:`ClipRow` records per split, read by header name
with ``QUOTE_NONE`` semantics (the TSVs hold unbalanced quotes), from v1 to v25 layouts.
"""

from __future__ import annotations

import csv
import itertools
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from asr_transfer.errors import InputError
from asr_transfer.fileio import atomic_path

RELEASED_SPLITS = ("train", "dev", "test")
CLIP_TSVS = ("train", "dev", "test", "validated", "invalidated", "other")

# Clip TSV headers by release, from Common Voice's bundler (see docs/common-voice-format in the repo's
# shared notes). Used by the synthesizer and by tests; the reader never relies on positions.
HEADERS = {
    1: "client_id path sentence up_votes down_votes age gender accent",
    5: "client_id path sentence up_votes down_votes age gender accent locale segment",
    8: "client_id path sentence up_votes down_votes age gender accents locale segment",
    13: "client_id path sentence up_votes down_votes age gender accents variant locale segment",
    17: "client_id path sentence_id sentence sentence_domain up_votes down_votes age gender accents "
    "variant locale segment",
}


def header_for_version(version: float) -> list[str]:
    major = max(key for key in HEADERS if key <= int(version))
    return HEADERS[major].split()


class NotCommonVoice(InputError):
    pass


@dataclass(frozen=True)
class ClipRow:
    split: str
    line: int
    path: str
    sentence: str
    speaker: str = ""
    gender: str = ""
    age: str = ""
    accents: str = ""
    locale: str = ""
    sentence_id: str = ""
    problem: str = ""

    def metadata(self) -> dict:
        fields = {
            "speaker": self.speaker,
            "gender": self.gender,
            "age": self.age,
            "accents": self.accents,
            "locale": self.locale,
            "sentence_id": self.sentence_id,
        }
        return {key: value for key, value in fields.items() if value}


def clip_file_name(path_field: str) -> str:
    """The clip's file name in ``clips/``: v1 paths are bare hashes without ``.mp3``."""
    name = os.path.basename(path_field.strip())
    return name if name.lower().endswith(".mp3") else f"{name}.mp3"


@dataclass(frozen=True)
class TableLine:
    number: int  # line number in the file, the header being line 1
    fields: list[str]
    problem: str = ""  # why the line is no whole row; empty when it is one


def split_line(line: str, delimiter: str = "\t", quoted: bool = False) -> list[str] | None:
    """The fields of one line, or None when ``quoted`` and its quoting is broken (a quote that does not
    close on this line, text after a closing quote). Unquoted, a quote is ordinary text."""
    if not quoted:
        return line.split(delimiter)
    try:
        return next(csv.reader([line], delimiter=delimiter, strict=True), [])
    except csv.Error:
        return None


def table_lines(handle, width: int, delimiter: str = "\t", quoted: bool = False) -> Iterator[TableLine]:
    """The data lines of a table whose header (``width`` fields) was read from ``handle``; blank lines
    are skipped. Each line is parsed on its own, so that a quote can never swallow the lines after it,
    and a line is a row only when its field count is the header's: a line break inside a field (real
    clip TSVs have none; a quoted field may) cuts a row into pieces that each have too few fields, and
    reading either piece as a row would keep half a sentence."""
    for number, line in enumerate(handle, start=2):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = split_line(line, delimiter, quoted)
        if fields is None:
            named = next(csv.reader([line], delimiter=delimiter), [])  # lenient, only to name the row in rejects
            yield TableLine(number, named, f"line {number}: its quotes do not pair up (a line break inside a field?)")
        elif len(fields) != width:
            cause = "a line break inside a field?" if len(fields) < width else "a delimiter inside a field?"
            yield TableLine(number, fields, f"line {number} has {len(fields)} fields, the header {width} ({cause})")
        else:
            yield TableLine(number, fields)


def read_clip_tsv(path: str | os.PathLike, split: str) -> Iterator[ClipRow]:
    """Yield every data row of a clip TSV. Rows are split on tabs only: quotes are ordinary text."""
    with open(path, encoding="utf-8", newline="") as handle:
        header_line = handle.readline()
        if not header_line:
            return
        header = header_line.rstrip("\r\n").split("\t")
        columns = {name: index for index, name in enumerate(header)}
        if "path" not in columns or "sentence" not in columns:
            raise NotCommonVoice(f"{path}: header has no 'path' and 'sentence' columns: {header}")
        for line in table_lines(handle, len(header)):
            yield _row_from_fields(split, line, columns)


def _row_from_fields(split: str, line: TableLine, columns: dict[str, int]) -> ClipRow:
    fields = line.fields

    def get(name: str) -> str:
        index = columns.get(name)
        return fields[index].strip() if index is not None and index < len(fields) else ""

    return ClipRow(
        split=split,
        line=line.number,
        path=get("path"),
        sentence=get("sentence"),
        speaker=get("client_id"),
        gender=get("gender"),
        age=get("age"),
        accents=get("accents") or get("accent"),
        locale=get("locale"),
        sentence_id=get("sentence_id"),
        problem=line.problem,
    )


def is_locale_dir(path: Path) -> bool:
    return (path / "clips").is_dir() and any((path / f"{name}.tsv").is_file() for name in RELEASED_SPLITS)


def find_locale_dir(root: str | os.PathLike, lang: str | None = None) -> Path:
    """The folder holding ``clips/`` and the split TSVs, searched up to two levels below ``root``."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root} does not exist; give the extracted Common Voice folder or its .tar.gz")
    if is_locale_dir(root):
        return root
    candidates = [path for path in sorted(root.glob("*")) + sorted(root.glob("*/*")) if is_locale_dir(path)]
    if lang:
        matching = [path for path in candidates if path.name == lang]
        candidates = matching or candidates
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise NotCommonVoice(
            f"{root} is not a Common Voice locale: no folder below it holds clips/ and train/dev/test.tsv; "
            "give the extracted release (cv-corpus-<version>-<date>/<locale>/ at any level) or its .tar.gz"
        )
    names = ", ".join(str(path) for path in candidates)
    raise NotCommonVoice(f"{root} holds several Common Voice locales ({names}); pass --lang or the locale folder")


_CLIP_NAME_LOCALE = re.compile(r"^common_voice_(.+)_\d+(\.\w+)?$")


def stated_locales(locale_dir: Path, rows_per_split: int = 50) -> dict[str, set[str]]:
    """What a release says its locale is, by where it says it: the folder name (v5+ releases hold
    ``cv-corpus-<ver>-<date>/<locale>/``), the TSVs' ``locale`` column (v5+) and the clip names
    (``common_voice_<locale>_<id>.mp3``, v2+), read from the first rows of each split."""
    stated: dict[str, set[str]] = {}
    for split in RELEASED_SPLITS:
        if not (locale_dir / f"{split}.tsv").is_file():
            continue
        for row in itertools.islice(read_split(locale_dir, split), rows_per_split):
            if row.problem:  # a piece of a cut row: its fields are shifted, its "locale" is some other column
                continue
            if row.locale:
                stated.setdefault("locale column", set()).add(row.locale)
            named = _CLIP_NAME_LOCALE.match(clip_file_name(row.path))
            if named:
                stated.setdefault("clip names", set()).add(named.group(1))
    if locale_dir.parent.name.startswith("cv-corpus-"):
        stated["folder name"] = {locale_dir.name}
    return stated


class LocaleMismatch(InputError):
    pass


def check_locale(locale_dir: Path, lang: str) -> None:
    """Refuse a release that says it is in another language than ``lang``: a wrong --lang would reject
    every row as foreign text and finish with nothing kept."""
    for where, locales in stated_locales(locale_dir).items():
        others = sorted(locales - {lang})
        if others and where == "folder name":
            raise LocaleMismatch(
                f"{locale_dir}: the folder is named {others[0]}, not {lang} (a release names each locale's folder "
                f"after it); pass --lang {others[0]}, or --force-lang if the folder was renamed"
            )
        if others:
            raise LocaleMismatch(
                f"{locale_dir} is Common Voice {', '.join(others)} by its {where}, not {lang}; pass --lang "
                f"{others[0]}, or --force-lang if the release really is {lang}"
            )


def read_split(locale_dir: Path, split: str) -> Iterator[ClipRow]:
    path = locale_dir / f"{split}.tsv"
    if not path.is_file():
        raise NotCommonVoice(f"{path} is missing: a Common Voice locale has {', '.join(RELEASED_SPLITS)}.tsv")
    return read_clip_tsv(path, split)


def extra_train_from_validated(
    locale_dir: Path, held_out: list[ClipRow], counts: dict, skip_paths: set[str] = frozenset()
) -> Iterator[ClipRow]:
    """Validated clips whose speaker and sentence appear in neither dev nor test.

    Clips in ``skip_paths`` (those train.tsv lists already) are passed over. ``counts`` receives how
    many validated rows were considered and why the others were left out.
    """
    speakers = {row.speaker for row in held_out if row.speaker}
    sentences = {row.sentence.strip().lower() for row in held_out}
    held_out_paths = {clip_file_name(row.path) for row in held_out}
    for name in (
        "validated_rows",
        "added",
        "already_in_train",
        "excluded_dev_test_clip",
        "excluded_speaker",
        "excluded_sentence",
    ):
        counts.setdefault(name, 0)
    for row in read_clip_tsv(locale_dir / "validated.tsv", "train"):
        counts["validated_rows"] += 1
        if clip_file_name(row.path) in skip_paths:
            counts["already_in_train"] += 1
        elif clip_file_name(row.path) in held_out_paths:
            counts["excluded_dev_test_clip"] += 1
        elif row.speaker in speakers:
            counts["excluded_speaker"] += 1
        elif row.sentence.strip().lower() in sentences:
            counts["excluded_sentence"] += 1
        else:
            counts["added"] += 1
            yield row


def _safe_member(member: tarfile.TarInfo, destination: Path) -> bool:
    target = (destination / member.name).resolve()
    inside = target == destination or destination in target.parents
    return inside and (member.isfile() or member.isdir())


def extract_tarball(tarball: str | os.PathLike, destination: str | os.PathLike, progress=None) -> Path:
    """Extract a Common Voice ``.tar.gz`` safely and resumably into ``destination``.

    Members that would land outside ``destination`` (absolute paths, ``..``), links and devices are
    skipped. Files already present with the right size are not written again; each file is written
    under a temporary name and renamed, and a marker file records a finished extraction.
    """
    destination = Path(destination).resolve()
    marker = destination / ".extracted"
    if marker.exists():
        return destination
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:*") as archive:
        for member in archive:
            if not _safe_member(member, destination):
                continue
            target = destination / member.name
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if target.is_file() and target.stat().st_size == member.size:
                continue
            source = archive.extractfile(member)
            with atomic_path(target) as tmp, open(tmp, "wb") as out:
                while block := source.read(1 << 20):
                    out.write(block)
            if progress is not None:
                progress.update(1)
    marker.touch()
    return destination
