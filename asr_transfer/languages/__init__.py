"""Language files: alphabet, normalization rules, synthesis grammar and test cases per language.

In: a language code (``de``, ``es``, ``ru``, ``yue``, ``zh-HK``, ``zh``, ``en``) naming a YAML file in
this folder. Out: a :class:`Language` whose :meth:`Language.normalize` turns a raw transcript into model
text or a reject reason. Every language difference lives in the YAML files; this module holds no
per-language branches.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from asr_transfer.errors import UserError

LANGUAGE_DIR = Path(__file__).parent

# CJK Unified Ideographs with extensions A-H and the compatibility blocks.
_HAN_RANGES = (
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x2FA1F),
    (0x30000, 0x323AF),
)

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
    metric: str = "wer"  # the primary metric: best checkpoints, exports and study results follow it
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


def available_languages() -> list[str]:
    return sorted(path.stem for path in LANGUAGE_DIR.glob("*.yaml"))


def _load_raw(code: str) -> dict:
    path = LANGUAGE_DIR / f"{code}.yaml"
    if not path.exists():
        raise UnknownLanguage(
            f"no language file for {code!r}; available: {', '.join(available_languages())}. "
            f"Add {path} (alphabet, maps, cases) to support it."
        )
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    parent = raw.pop("inherit", None)
    if parent:
        merged = _load_raw(parent)
        merged.pop("cases", None)
        merged.update(raw)
        raw = merged
    return raw


@cache
def load_language(code: str) -> Language:
    raw = _load_raw(code)
    raw["code"] = code
    return Language(**raw)
