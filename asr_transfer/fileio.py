"""Atomic file writing and NeMo manifest reading/writing shared by every step.

In: a destination path and the content (text, JSON lines, or a writer callback). Out: the file appears
under its final name only when complete: content goes to ``<name>.tmp-<pid>`` first and is renamed,
so a killed run never leaves a half-written file that looks finished.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from asr_transfer.errors import ManifestError

TMP_MARK = ".tmp-"


def temporary_name(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    directory, name = os.path.split(path)
    return os.path.join(directory, f"{name}{TMP_MARK}{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path to write; rename it onto ``path`` on success, delete it on error."""
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator:
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle


@contextlib.contextmanager
def atomic_open_all(paths: list) -> Iterator[list]:
    """``atomic_open`` for several files at once: all are renamed into place only if the block succeeds."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_open(path)) for path in paths]


def write_json(path: str | os.PathLike, data) -> None:
    with atomic_open(path) as handle:
        json.dump(data, handle, ensure_ascii=False, indent=2, sort_keys=False)
        handle.write("\n")


def manifest_line(entry: dict) -> str:
    return json.dumps(entry, ensure_ascii=False) + "\n"


def write_manifest(path: str | os.PathLike, entries: Iterable[dict]) -> int:
    count = 0
    with atomic_open(path) as handle:
        for entry in entries:
            handle.write(manifest_line(entry))
            count += 1
    return count


def parse_manifest_line(line: str, where: str, fields: tuple[str, ...] = ()) -> dict:
    """One manifest line as a dict; a line that is not a JSON object, or lacks one of ``fields``, raises
    :class:`ManifestError` naming ``where`` (``path:line``)."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as error:
        raise ManifestError(f"{where}: not a JSON manifest line ({error.msg}); fix or remove the line") from None
    if not isinstance(entry, dict):
        raise ManifestError(f"{where}: a manifest line must be a JSON object, not {type(entry).__name__}; fix the line")
    missing = [name for name in fields if name not in entry]
    if missing:
        raise ManifestError(
            f"{where}: missing field {', '.join(missing)}; every line needs {', '.join(fields)} "
            f"(`asr-transfer manifest validate` lists every problem)"
        )
    return entry


def read_manifest(path: str | os.PathLike, fields: tuple[str, ...] = ()) -> Iterator[dict]:
    """Yield the entries of a NeMo JSON-lines manifest. A missing file, a broken line or a line without
    one of ``fields`` raises :class:`ManifestError` with the line number."""
    if not os.path.isfile(path):
        raise ManifestError(f"manifest {path} does not exist; check the path")
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield parse_manifest_line(line, f"{path}:{number}", fields)


def remove_stale_temporaries(directory: str | os.PathLike) -> int:
    """Delete ``*.tmp-<pid>`` leftovers of killed runs below ``directory``."""
    removed = 0
    for path in Path(directory).rglob(f"*{TMP_MARK}*"):
        if path.is_file():
            path.unlink()
            removed += 1
    return removed
