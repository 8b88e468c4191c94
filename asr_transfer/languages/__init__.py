"""Language files: alphabet, normalization rules, synthesis grammar and test cases per language.

In: a language code (``de``, ``es``, ``ru``, ``yue``, ``zh-HK``, ``zh``, ``en``) naming a YAML file in
this folder, or a code whose file lies in a user folder: ``$ASR_TRANSFER_LANGUAGES`` (one folder, or several
separated by ``os.pathsep``), searched first, so that a user file also overrides a built-in one
(``asr-transfer new-language`` writes such files from a Common Voice release). Out: a :class:`Language`
whose :meth:`Language.normalize` turns a raw transcript into model text or a reject reason. Every language
difference lives in the YAML files; this module holds no per-language branches.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from asr_transfer.errors import UserError
from asr_transfer.inherit import INHERIT_KEY, resolve_inherit

LANGUAGE_DIR = Path(__file__).parent
LANGUAGES_ENV = "ASR_TRANSFER_LANGUAGES"  # user folders of language files, searched before LANGUAGE_DIR

# CJK Unified Ideographs with extensions A-H and the compatibility blocks.
_HAN_RANGES = (
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x2FA1F),
    (0x30000, 0x323AF),
)

METRICS = ("wer", "cer")  # what a language file's `metric` may name
DEFAULT_METRIC = "wer"  # the metric of a language file without `metric`, and of text of no known language
# The key of a model's config (model_config.yaml inside the .nemo) that records the language it was fine-tuned
# to: finetune writes its `lang` there, and evaluate, tune-lm and filter read it when --lang is not given.
# Stock NeMo restores a model with it (an unknown top-level key is kept, not read).
MODEL_LANGUAGE_KEY = "lang"

REJECT_EMPTY = "empty_text"
REJECT_DIGITS = "digits"
REJECT_FOREIGN = "foreign_char"


class UnknownLanguage(UserError):
    pass


def is_han(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _HAN_RANGES)


@dataclass(frozen=True)
class Normalized:
    """A transcript after normalization: ``text`` when usable, else ``reason`` (and ``detail``)."""

    text: str | None
    reason: str | None = None
    detail: str = ""


@dataclass
class Language:
    code: str
    name: str
    alphabet: str
    han: bool = False
    maps: dict[str, str] = field(default_factory=dict)
    optional_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    character_coverage: float = 1.0
    min_chars_per_second: float = 0.0
    max_chars_per_second: float = 30.0
    espeak_voice: str | None = None
    metric: str = DEFAULT_METRIC  # the primary metric (primary_metric): best checkpoints, evaluate, tune-lm, study
    grammar: dict | None = None
    cases: list[dict] = field(default_factory=list)
    enabled_options: tuple[str, ...] = ()
    any_letter: bool = False  # every letter, mark and digit is allowed (the rules for text of no known language)

    def with_options(self, options: list[str] | tuple[str, ...]) -> Language:
        unknown = [name for name in options if name not in self.optional_maps]
        if unknown:
            known = ", ".join(sorted(self.optional_maps)) or "none"
            raise UserError(f"language {self.code} has no text option {unknown[0]!r}; use one of: {known}")
        clone = Language(**{**self.__dict__, "enabled_options": tuple(options)})
        return clone

    def allows(self, char: str) -> bool:
        if self.any_letter and unicodedata.category(char)[0] in "LMN":
            return True
        return char in self.alphabet or (self.han and is_han(char))

    def normalize(self, raw: str) -> Normalized:
        text = unicodedata.normalize("NFKC", raw).lower()
        for source, target in self.maps.items():
            text = text.replace(source, target)
        for option in self.enabled_options:
            for source, target in self.optional_maps[option].items():
                text = text.replace(source, target)
        kept = []
        for char in text:
            if self.allows(char):
                kept.append(char)
                continue
            category = unicodedata.category(char)
            if category[0] == "N":
                return Normalized(None, REJECT_DIGITS, char)
            if category[0] in "PSZC":
                kept.append(" ")
                continue
            return Normalized(None, REJECT_FOREIGN, char)
        text = _tidy_spaces("".join(kept), self.han)
        if "'" in self.alphabet:
            text = _strip_quote_apostrophes(text)
        if not text:
            return Normalized(None, REJECT_EMPTY)
        return Normalized(text)

    def label_set(self) -> list[str]:
        """The alphabet as CTC labels: space first, then the other characters in file order."""
        return [" "] + [char for char in self.alphabet if char != " "]


def _tidy_spaces(text: str, han: bool) -> str:
    words = text.split()
    if not han:
        return " ".join(words)
    # Han script has no word spaces: keep a space only between two non-Han words (Latin code-switches).
    joined = ""
    for word in words:
        if joined and not is_han(joined[-1]) and not is_han(word[0]):
            joined += " "
        joined += word
    return joined


def _strip_quote_apostrophes(text: str) -> str:
    """Keep apostrophes inside words (geht's, don't) and drop those used as quotation marks."""
    chars = list(text)
    for index, char in enumerate(chars):
        if char != "'":
            continue
        before = chars[index - 1] if index > 0 else " "
        after = chars[index + 1] if index + 1 < len(chars) else " "
        if not (before.isalpha() and after.isalpha()):
            chars[index] = " "
    return " ".join("".join(chars).split())


# Text whose language is not known (a manifest scored without --lang): NFKC, lower case, punctuation and
# symbols to spaces, apostrophes kept inside words only, nothing rejected but text that is all punctuation.
ANY_LANGUAGE = Language(code="any", name="any language", alphabet=" '", any_letter=True, maps={"’": "'"})


def text_rules(lang: str | None) -> Language:
    """The language file of ``lang``, or :data:`ANY_LANGUAGE` when no language is given."""
    return load_language(lang) if lang else ANY_LANGUAGE


def user_language_dirs() -> list[Path]:
    """The folders of ``$ASR_TRANSFER_LANGUAGES``, in order (empty entries skipped)."""
    return [Path(entry) for entry in os.environ.get(LANGUAGES_ENV, "").split(os.pathsep) if entry.strip()]


def language_dirs() -> list[Path]:
    """Where language files are looked for, first match winning: the user folders, then the built-in one."""
    return [*user_language_dirs(), LANGUAGE_DIR]


def available_languages() -> list[str]:
    return sorted({path.stem for folder in language_dirs() for path in folder.glob("*.yaml")})


def language_path(code: str, after: Path | None = None) -> Path | None:
    """The file that defines ``code``: the first ``CODE.yaml`` of :func:`language_dirs` (after the folder
    ``after``, when given: a user file may inherit the built-in file of its own code)."""
    folders = language_dirs()
    if after is not None:
        resolved = [folder.resolve() for folder in folders]
        if after.resolve() in resolved:
            folders = folders[resolved.index(after.resolve()) + 1 :]
    return next((folder / f"{code}.yaml" for folder in folders if (folder / f"{code}.yaml").is_file()), None)


def _read_file(code: str, after: Path | None = None) -> tuple[dict, str]:
    """The raw mapping of ``code``'s language file (:func:`language_path`) and the file's path."""
    path = language_path(code, after)
    if path is None:
        searched = ", ".join(str(folder) for folder in language_dirs())
        raise UnknownLanguage(
            f"no language file for {code!r}; available: {', '.join(available_languages())} (searched {searched}). "
            f"Write one from a Common Voice release with `asr-transfer new-language {code} --from CV_DIR`, or add "
            f"{code}.yaml (alphabet, maps, cases) to a folder of ${LANGUAGES_ENV}"
        )
    with open(path, encoding="utf-8") as handle:
        try:
            raw = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise UserError(f"language file {path} is not valid YAML ({error}); fix or regenerate it") from None
    if not isinstance(raw, dict) or "alphabet" not in raw and INHERIT_KEY not in raw:
        raise UserError(f"language file {path} holds no alphabet; add an alphabet: key (as {LANGUAGE_DIR}/de.yaml)")
    return raw, str(path)


def _parent_file(name: str, child: str) -> tuple[dict, str]:
    # A user file may inherit the built-in file of its own code: look past the child's folder.
    child_path = Path(child)
    return _read_file(name, after=child_path.parent if name == child_path.stem else None)


def _load_raw(code: str) -> dict:
    raw, path = _read_file(code)
    # A file's cases test its own rules; a parent's cases may not hold for the child's changes.
    resolved = resolve_inherit(raw, path, _parent_file, not_inherited=("cases",))
    resolved["_path"] = path
    return resolved


def load_language(code: str) -> Language:
    """The language file of ``code`` (see :func:`language_path`). Parsed files are cached by the file found
    and its modification time, so a changed ``$ASR_TRANSFER_LANGUAGES`` or a rewritten file is seen (a
    changed parent of an ``inherit:`` is not)."""
    path = language_path(code)
    stamp = path.stat().st_mtime_ns if path is not None else None
    return _load_language(code, str(path), stamp)


@cache
def _load_language(code: str, path: str, stamp: int | None) -> Language:
    raw = _load_raw(code)
    source = raw.pop("_path")
    raw["code"] = code
    known = set(Language.__dataclass_fields__) - {"code", "enabled_options"}
    unknown = sorted(set(raw) - known - {"code"})
    if unknown:
        raise UserError(
            f"language file {source} has an unknown key {unknown[0]!r}; use only: {', '.join(sorted(known))}"
        )
    if raw.get("metric", DEFAULT_METRIC) not in METRICS:
        raise UserError(f"language file {source} has metric {raw['metric']!r}; use one of {', '.join(METRICS)}")
    return Language(**raw)


def primary_metric(lang: str | None) -> str:
    """``wer`` or ``cer``: the metric text of language ``lang`` is judged on, its language file's ``metric``
    (:data:`DEFAULT_METRIC` without a language). The one rule for the checkpoint monitor, ``evaluate``'s
    primary metric and ``--tolerance``, ``tune-lm``'s choice of alpha and beta, and the study. Raises
    :class:`UnknownLanguage` when ``lang`` has no language file."""
    return load_language(lang).metric if lang else DEFAULT_METRIC


def recorded_language(model_config) -> str | None:
    """The language a model records (:data:`MODEL_LANGUAGE_KEY` of its config: a ``DictConfig``, or the
    dict :func:`asr_transfer.nemofile.read_config` reads from a ``.nemo``), or None (a base, or a model
    fine-tuned without ``lang``)."""
    value = model_config.get(MODEL_LANGUAGE_KEY) if model_config is not None else None
    return str(value) if value else None


def case_failures(language: Language) -> list[str]:
    """Each of the file's ``cases`` that normalization does not give as written (empty: all pass)."""
    failures = []
    for case in language.cases:
        result = language.with_options(case.get("options", [])).normalize(case["text"])
        if result.text != case.get("expect") or result.reason != case.get("reject"):
            wanted = f"expect {case['expect']!r}" if "expect" in case else f"reject {case.get('reject')}"
            got = repr(result.text) if result.text is not None else f"reject {result.reason} ({result.detail!r})"
            failures.append(f"{case['text']!r}: {wanted}, got {got}")
    return failures
