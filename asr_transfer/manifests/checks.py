"""Checks of a NeMo manifest before expensive work starts (training, transcription, tokenizer training).

In: a manifest path, the fields its lines need (one of the ``*_FIELDS`` below), and how far to check the
audio (``None``: not at all; ``"open"``: the file is there and libsndfile reads its header, for readers
that downmix and resample themselves: transcribe, evaluate, tune-lm; ``"exists"``: as ``"open"``, and the
audio has one channel, for NeMo's own dataset loaders: finetune, shrink. They resample any rate, but hand
each channel of a multi-channel file on as a separate signal, and training then crashes); relative audio
paths are the manifest folder's (:mod:`asr_transfer.manifests.paths`). Out: every problem, in file order
(:func:`iter_problems`, behind ``manifest validate``), or :func:`require_manifest`, which raises one
:class:`ManifestError` naming the first problem and how many there are, or saying the manifest is
empty, and otherwise returns the number of utterances. Both stream the file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

from asr_transfer.errors import ManifestError
from asr_transfer.fileio import parse_manifest_line
from asr_transfer.manifests.paths import audio_path

# The fields a manifest line needs, by what reads it; every command names one of these.
TRAINING_FIELDS = ("audio_filepath", "duration", "text")  # NeMo's training loaders, shards, validate
EVALUATION_FIELDS = ("audio_filepath", "text")  # evaluate, tune-lm, filter: audio and its reference
AUDIO_FIELDS = ("audio_filepath",)  # transcribe, shrink's audio: audio only
AUDIO_CHECKS = (None, "exists", "open")


def audio_problem(full: str, check: str | None = "open") -> str | None:
    """What keeps the audio file ``full`` (a resolved path, :func:`asr_transfer.manifests.paths.audio_path`)
    from being read, or None."""
    if check is None:
        return None
    if not os.path.isfile(full):
        return "audio file missing"
    from asr_transfer.manifests.audio import channel_count

    try:
        channels = channel_count(full)
    except Exception as error:  # libsndfile raises several types
        return f"audio unreadable ({' '.join(str(error).split())[:80]})"
    if check == "exists" and channels > 1:
        return (
            f"audio has {channels} channels, and NeMo's training loaders read mono only "
            "(`asr-transfer prepare-folder MANIFEST OUT_DIR --lang L` writes it as 16 kHz mono)"
        )
    return None


def entry_problems(entry: dict, fields: tuple[str, ...]) -> Iterator[str]:
    """Field-level problems of a parsed line (its audio is checked separately)."""
    if "duration" in fields:
        duration = entry["duration"]
        if not isinstance(duration, (int, float)) or not math.isfinite(duration) or duration <= 0:
            yield f"duration {duration!r} is not a positive number"
    if "text" in fields and not str(entry["text"]).strip():
        yield "empty text"


def iter_problems(path: str, fields: tuple[str, ...], audio: str | None) -> Iterator[tuple[str, str, dict | None]]:
    """``(where, problem, entry)`` for every problem and ``(where, "", entry)`` for every sound line, in
    file order; ``where`` is ``path:line`` and ``entry`` is None for a line that does not parse."""
    if audio not in AUDIO_CHECKS:
        raise ValueError(f"audio check must be one of {AUDIO_CHECKS}, not {audio!r}")
    if not os.path.isfile(path):
        raise ManifestError(f"manifest {path} does not exist; check the path")
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                entry = parse_manifest_line(line, where, fields)
            except ManifestError as error:
                yield where, str(error).split("; ")[0], None
                continue
            found = [f"{where}: {problem}" for problem in entry_problems(entry, fields)]
            missing_audio = (
                audio_problem(audio_path(entry["audio_filepath"], path), audio) if "audio_filepath" in entry else None
            )
            if missing_audio:
                found.append(f"{where}: {missing_audio}: {entry['audio_filepath']}")
            for problem in found or [""]:
                yield where, problem, entry


def require_manifest(
    path: str, fields: tuple[str, ...] = TRAINING_FIELDS, audio: str | None = "exists", role: str = "manifest"
) -> int:
    """The number of utterances of a sound manifest; else one :class:`ManifestError` that says what to do."""
    first_problem, problems, utterances = "", 0, 0
    for _, problem, _ in iter_problems(path, fields, audio):
        if problem:
            first_problem = first_problem or problem
            problems += 1
        else:
            utterances += 1  # a sound line is yielded once, with an empty problem
    if problems:
        more = f" and {problems - 1} more" if problems > 1 else ""
        raise ManifestError(
            f"the {role} {first_problem}{more}; fix the manifest "
            f"(`asr-transfer manifest validate {path}` lists every problem)"
        )
    if utterances == 0:
        raise ManifestError(f"the {role} {path} holds no utterances; give a manifest with at least one line")
    return utterances


def require_normalized(path: str, lang: str, role: str = "manifest") -> None:
    """Every line's text is already in the form the language file gives (what ``prepare-*`` writes), so
    that a character model's labels and a tokenizer see the text they were built from; otherwise one
    :class:`ManifestError` with the count of lines that would change and the first of them."""
    from asr_transfer.fileio import read_manifest
    from asr_transfer.languages import load_language

    language = load_language(lang)
    first, count = None, 0
    for number, entry in enumerate(read_manifest(path, ("text",)), start=1):
        normalized = language.normalize(entry["text"])
        if normalized.text != entry["text"]:
            count += 1
            if first is None:
                becomes = repr(normalized.text) if normalized.text else f"rejected ({normalized.reason})"
                first = f"line {number}: {entry['text']!r} -> {becomes}"
    if count:
        raise ManifestError(
            f"{count} lines of the {role} {path} are not normalized by the {lang} language file ({first}); "
            f"rebuild it with `asr-transfer prepare-folder {path} OUT_DIR --lang {lang} --no-convert`"
        )
