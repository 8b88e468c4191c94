"""``asr-transfer new-language``: a draft language file derived from a Common Voice release's text.

In: a locale code and a release (``CV_DIR_OR_TARBALL``: the extracted folder at any level, or the
``.tar.gz``, of which only the text tables are read unless ``--extract-dir`` asks for a full, resumable
extraction that ``prepare-cv --extract-dir`` can reuse). The text is ``validated_sentences.tsv`` where the
release has one (v17+), else the sentences of validated/train/dev/test.tsv; each distinct sentence counts once.
Out: ``CODE.yaml`` (``--out``; default: the first folder of ``$ASR_TRANSFER_LANGUAGES``, else
``./languages/``) with the alphabet (the letters and marks that cover 99.9 % of letter occurrences after
NFKC and lower-casing, as :class:`~asr_transfer.languages.Language` normalizes), apostrophe and its curly
forms where the data writes them inside words, ``metric: cer`` for scripts without word spaces, ``han: true``
for Han text, and ``cases`` made of real sentences of the release with their expected result computed by the
same normalization; ``CODE.report.md`` beside it (also printed): sentences read, the share each rule
removes, the rejected rare letters with counts and an example each, and why each key has its value.
``--check`` runs a language file's cases; ``--print-path`` prints which file a code resolves to.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tarfile
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from asr_transfer.errors import InputError, UserError
from asr_transfer.fileio import atomic_open
from asr_transfer.languages import (
    LANGUAGES_ENV,
    REJECT_DIGITS,
    REJECT_EMPTY,
    REJECT_FOREIGN,
    Language,
    case_failures,
    is_han,
    language_path,
    load_language,
    user_language_dirs,
)
from asr_transfer.manifests import common_voice as cv

COVERAGE = 0.999  # share of letter occurrences the alphabet covers; the rarer letters reject their rows
MIN_LETTER_SENTENCES = 2  # a letter seen in fewer distinct sentences is never taken (a typo, a foreign name)
APOSTROPHE_SHARE = 0.001  # sentences with an apostrophe between two letters, above which "'" is a letter
MIN_SENTENCES, MIN_LETTERS = 20, 200  # less text than this cannot tell a letter from a typo
HAN_SHARE = 0.1  # Han characters above this share of letters: han: true (any Han character is allowed)
NO_SPACE_SHARE = 0.5  # sentences (of at least NO_SPACE_MIN_LETTERS letters) without a space: metric cer
NO_SPACE_MIN_LETTERS = 8
# Scripts written without spaces between words (first word of a letter's Unicode name): scored by CER.
SCRIPTS_WITHOUT_SPACES = ("CJK", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA", "THAI", "KHMER", "LAO", "MYANMAR")
APOSTROPHES = {"’": "'", "‘": "'", "`": "'"}  # curly and grave apostrophes are written as the straight one
# Dotted capital I and dotless i (Turkish, Azerbaijani, ...): str.lower() gives i + U+0307 for İ, mapped to i.
DOTTED_I_SIGNS = ("ı", "İ")
DOTTED_I_MAPS = {"i̇": "i"}
# Defaults of the keys the text cannot decide (de.yaml's values; Han as yue.yaml).
DEFAULTS = {"min_chars_per_second": 1.0, "max_chars_per_second": 30.0}
COVERAGE_ALPHABET, COVERAGE_HAN = 1.0, 0.9995
# Words for the constructed foreign-letter case when the release rejects no letter: the first none of whose
# letters the file allows.
FOREIGN_PROBES = ("жук", "quiz", "こんにちは", "שלום", "γάτα")
CONSTRUCTED_EMPTY = "… – ?"
TEXT_TABLES = ("validated", "train", "dev", "test")
SENTENCES_TABLE = "validated_sentences.tsv"
CODE_PATTERN = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]+)*$")
EXAMPLE_CHARS = 90  # an example sentence in a comment or the report is cut to this length


class TooLittleText(InputError):
    pass


@dataclass(frozen=True)
class SourceSentence:
    text: str
    where: str  # "train.tsv line 5"


@dataclass
class Derived:
    """What ``new-language`` decided, the evidence, and the file's text."""

    code: str
    locale_dir: str
    tables: list[str]
    rows_read: int
    skipped_lines: int
    sentences: list[SourceSentence]
    language: Language
    letter_counts: Counter
    letter_sentences: Counter  # letter -> distinct sentences holding it
    rejected_letters: list[str]
    coverage: float  # the share of letter occurrences the alphabet covers
    target: float  # the share asked for
    apostrophe_share: float
    script: str
    script_share: float
    han_share: float
    no_space_share: float
    dotted_i: bool
    outcomes: Counter  # normalization result per sentence: kept / digits / foreign_char / empty_text
    examples: dict[str, SourceSentence]  # rejected letter -> first sentence holding it
    cases: list[tuple[dict, str]] = field(default_factory=list)  # (case, comment)

    @property
    def letters_total(self) -> int:
        return sum(self.letter_counts.values())


def prepared_text(raw: str, maps: dict[str, str]) -> str:
    """What :meth:`Language.normalize` sees before its per-character rules: NFKC, lower case, maps."""
    text = unicodedata.normalize("NFKC", raw).lower()
    for source, target in maps.items():
        text = text.replace(source, target)
    return text


def is_letter(char: str) -> bool:
    return unicodedata.category(char)[0] in "LM"


def script_of(char: str) -> str:
    return unicodedata.name(char, "UNKNOWN").split()[0]


def shown(char: str) -> str:
    """A letter as printed in reports: a combining mark on a dotted circle, so that it is visible."""
    return f"\u25cc{char}" if unicodedata.category(char)[0] == "M" else char


def _cut(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"


# --- reading the release ---------------------------------------------------------------------------------


def _extract_tables(tarball: Path, destination: Path) -> None:
    """Only the text tables of a release archive, into ``destination`` (the clips stay in the archive);
    an empty ``clips/`` beside them makes the folder a locale folder for :func:`cv.find_locale_dir`."""
    wanted = {SENTENCES_TABLE, *(f"{name}.tsv" for name in TEXT_TABLES)}
    try:
        with tarfile.open(tarball, "r:*") as archive:
            for member in archive:
                if not (member.isfile() and os.path.basename(member.name) in wanted):
                    continue
                if not cv._safe_member(member, destination.resolve()):
                    continue
                target = destination / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                (target.parent / "clips").mkdir(exist_ok=True)
                with open(target, "wb") as out:
                    out.write(archive.extractfile(member).read())
    except (tarfile.TarError, OSError, EOFError) as error:
        raise InputError(
            f"{tarball} is not a readable .tar.gz ({error}); give the release archive or its folder"
        ) from None


@contextlib.contextmanager
def locale_folder(source: str, code: str, extract_dir: str | None = None, force_lang: bool = False) -> Iterator[Path]:
    """The locale folder of ``source`` (a folder at any level, or a tarball), checked to be ``code``."""
    path = Path(source)
    with contextlib.ExitStack() as stack:
        if path.is_file():
            if not path.name.endswith((".tar.gz", ".tgz", ".tar")):
                raise cv.NotCommonVoice(f"{path} is a file but not a .tar.gz; give the release archive or its folder")
            if extract_dir:
                cv.extract_tarball(path, extract_dir)
                path = Path(extract_dir)
            else:
                temporary = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="new-language-")))
                _extract_tables(path, temporary)
                path = temporary
        locale_dir = cv.find_locale_dir(path, code)
        if not force_lang:
            for where, locales in cv.stated_locales(locale_dir).items():
                others = sorted(locales - {code})
                if others:
                    raise cv.LocaleMismatch(
                        f"{locale_dir} is Common Voice {others[0]} by its {where}, not {code}; run "
                        f"`asr-transfer new-language {others[0]} --from {source}`, or pass --force-lang if it is {code}"
                    )
        yield locale_dir


def release_sentences(locale_dir: Path) -> tuple[list[SourceSentence], list[str], int, int]:
    """The distinct sentences of a release, where each was first seen, the tables read, the rows read and
    the lines skipped as no whole row (a sentence cut by a line break)."""
    from asr_transfer.lm.train import cv_sentences

    seen: dict[str, SourceSentence] = {}
    rows = skipped = 0

    def add(text: str, where: str) -> None:
        text = text.strip()
        if text not in seen:
            seen[text] = SourceSentence(text, where)

    sentences_file = locale_dir / SENTENCES_TABLE
    if sentences_file.is_file():
        tables = [SENTENCES_TABLE]
        for sentence in cv_sentences(str(sentences_file)):
            rows += 1
            if sentence.problem:
                skipped += 1
            else:
                add(sentence.text, f"{SENTENCES_TABLE} line {sentence.line}")
    else:
        tables = [f"{name}.tsv" for name in TEXT_TABLES if (locale_dir / f"{name}.tsv").is_file()]
        for table in tables:
            for row in cv.read_clip_tsv(locale_dir / table, table[:-4]):
                rows += 1
                if row.problem:
                    skipped += 1
                else:
                    add(row.sentence, f"{table} line {row.line}")
    return list(seen.values()), tables, rows, skipped


# --- deciding ----------------------------------------------------------------------------------------------


def choose_alphabet(counts: Counter, coverage: float, sentences: Counter) -> list[str]:
    """The most frequent letters until their share of all occurrences reaches ``coverage``, leaving out
    letters seen in fewer than :data:`MIN_LETTER_SENTENCES` sentences (``sentences``: letter -> distinct
    sentences holding it); letters as frequent as the last one chosen are chosen too (no tie is broken by
    code point)."""
    total = sum(counts.values())
    chosen: list[str] = []
    covered = 0
    for letter, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if sentences[letter] < MIN_LETTER_SENTENCES:
            continue
        if total and covered / total >= coverage and count < counts[chosen[-1]]:
            break
        chosen.append(letter)
        covered += count
    return chosen


def _has_inner_apostrophe(text: str) -> bool:
    return any(
        char == "'" and 0 < index < len(text) - 1 and text[index - 1].isalpha() and text[index + 1].isalpha()
        for index, char in enumerate(text)
    )


def derive_language(
    code: str,
    source: str,
    extract_dir: str | None = None,
    force_lang: bool = False,
    coverage: float = COVERAGE,
) -> Derived:
    """Read a release's text and decide the language file of ``code``; nothing is written."""
    if not CODE_PATTERN.match(code):
        raise UserError(f"{code!r} is no Common Voice locale code; give one such as tw, yue, zh-HK or rm-sursilv")
    if not 0 < coverage <= 1:
        raise UserError(f"--coverage {coverage} is not a share; give one in (0, 1], e.g. {COVERAGE}")
    with locale_folder(source, code, extract_dir, force_lang) as locale_dir:
        sentences, tables, rows, skipped = release_sentences(locale_dir)
    dotted_i = any(sign in sentence.text for sentence in sentences for sign in DOTTED_I_SIGNS)
    base_maps = {**APOSTROPHES, **(DOTTED_I_MAPS if dotted_i else {})}
    prepared = [prepared_text(sentence.text, base_maps) for sentence in sentences]
    with_digits = [any(unicodedata.category(char)[0] == "N" for char in text) for text in prepared]
    letters: Counter = Counter()
    letter_sentences: Counter = Counter()
    examples: dict[str, SourceSentence] = {}
    for sentence, text, digits in zip(sentences, prepared, with_digits, strict=True):
        if digits:
            continue  # rejected whatever its letters: not evidence of the alphabet
        for char in text:
            if is_letter(char):
                letters[char] += 1
                examples.setdefault(char, sentence)
        letter_sentences.update({char for char in text if is_letter(char)})
    total = sum(letters.values())
    if len(sentences) < MIN_SENTENCES or total < MIN_LETTERS:
        raise TooLittleText(
            f"{locale_dir} holds too little text to derive an alphabet: {len(sentences)} distinct sentences, "
            f"{total} letters (at least {MIN_SENTENCES} and {MIN_LETTERS} are needed); give a larger release, or "
            f"write {code}.yaml by hand (asr_transfer/languages/de.yaml shows the keys)"
        )
    han_count = sum(count for char, count in letters.items() if is_han(char))
    han = han_count / total >= HAN_SHARE
    scripts = Counter()
    for char, count in letters.items():
        if unicodedata.category(char)[0] == "L":
            scripts[script_of(char)] += count
    script, script_count = scripts.most_common(1)[0] if scripts else ("UNKNOWN", 0)
    long_sentences = [text for text, digits in zip(prepared, with_digits, strict=True) if not digits]
    long_sentences = [text for text in long_sentences if sum(map(is_letter, text)) >= NO_SPACE_MIN_LETTERS]
    no_space = sum(1 for text in long_sentences if not any(char.isspace() for char in text))
    no_space_share = no_space / len(long_sentences) if long_sentences else 0.0
    metric = "cer" if script in SCRIPTS_WITHOUT_SPACES or no_space_share >= NO_SPACE_SHARE else "wer"
    # Han characters are allowed by han: true, so the coverage is taken over the other letters.
    ranked = Counter({char: count for char, count in letters.items() if not (han and is_han(char))})
    chosen = choose_alphabet(ranked, coverage, letter_sentences)
    rejected = sorted((char for char in ranked if char not in chosen), key=lambda char: (-ranked[char], char))
    kept_texts = [text for text, digits in zip(prepared, with_digits, strict=True) if not digits]
    apostrophe_share = sum(map(_has_inner_apostrophe, kept_texts)) / max(len(kept_texts), 1)
    apostrophe = apostrophe_share >= APOSTROPHE_SHARE
    maps = {**(APOSTROPHES if apostrophe else {}), **(DOTTED_I_MAPS if dotted_i else {})}
    alphabet = " " + ("'" if apostrophe else "") + "".join(sorted(chosen))
    language = Language(
        code=code,
        name=code,
        alphabet=alphabet,
        han=han,
        maps=maps,
        character_coverage=COVERAGE_HAN if han else COVERAGE_ALPHABET,
        metric=metric,
        **DEFAULTS,
    )
    results = [language.normalize(sentence.text) for sentence in sentences]
    outcomes = Counter(result.reason or "kept" for result in results)
    derived = Derived(
        code=code,
        locale_dir=str(locale_dir),
        tables=tables,
        rows_read=rows,
        skipped_lines=skipped,
        sentences=sentences,
        language=language,
        letter_counts=letters,
        letter_sentences=letter_sentences,
        rejected_letters=rejected,
        coverage=sum(ranked[char] for char in chosen) / max(sum(ranked.values()), 1),
        target=coverage,
        apostrophe_share=apostrophe_share,
        script=script,
        script_share=script_count / total,
        han_share=han_count / total,
        no_space_share=no_space_share,
        dotted_i=dotted_i,
        outcomes=outcomes,
        examples={char: examples[char] for char in rejected},
    )
    derived.cases = choose_cases(derived, results)
    language.cases = [case for case, _ in derived.cases]
    return derived


# --- cases -------------------------------------------------------------------------------------------------


def _preference(sentence: SourceSentence) -> tuple:
    """Short sentences make readable cases; one-word fragments show little."""
    return (len(sentence.text) < 12, len(sentence.text), sentence.text)


def choose_cases(derived: Derived, results: list) -> list[tuple[dict, str]]:
    """One case per rule the data exercises, from real sentences; the rejects every language file must test
    (digits, a foreign letter) and an empty text are constructed when the release has no such sentence."""
    language = derived.language
    pairs = list(zip(derived.sentences, results, strict=True))
    kept = sorted(((s, r) for s, r in pairs if r.text), key=lambda pair: _preference(pair[0]))
    cases: list[tuple[dict, str]] = []
    used: set[str] = set()

    def add(sentence: SourceSentence, result, why: str) -> None:
        used.add(sentence.text)
        case = {"text": sentence.text}
        case.update({"expect": result.text} if result.text else {"reject": result.reason})
        cases.append((case, f"{why}; {sentence.where}"))

    def constructed(text: str, why: str) -> None:
        result = language.normalize(text)
        case = {"text": text}
        case.update({"expect": result.text} if result.text else {"reject": result.reason})
        cases.append((case, f"constructed: {why}"))

    # Letters beyond ASCII: a few sentences that together show as many of them as possible.
    special = {char for char in language.alphabet if ord(char) > 127}
    covered: set[str] = set()
    for _ in range(3):
        best = max(
            (pair for pair in kept if pair[0].text not in used),
            key=lambda pair: (len((set(pair[1].text) & special) - covered), -len(pair[0].text)),
            default=None,
        )
        if best is None or not (set(best[1].text) & special) - covered:
            break
        new = sorted((set(best[1].text) & special) - covered)
        covered |= set(new)
        add(*best, f"kept letters {' '.join(map(shown, new))}")
    if not cases and kept:
        add(*kept[0], "kept (Han characters: han: true allows them)" if language.han else "kept, lower-cased")
    # Punctuation dropped inside the sentence (not only a final full stop).
    inner = [
        pair
        for pair in kept
        if pair[0].text not in used and any(unicodedata.category(char)[0] == "P" for char in pair[0].text.strip()[:-1])
    ]
    if inner:
        marks = sorted({char for char in inner[0][0].text if unicodedata.category(char)[0] == "P"})
        add(*inner[0], f"punctuation {' '.join(marks)} dropped")
    if "'" in language.alphabet:
        inside = [pair for pair in kept if pair[0].text not in used and _has_inner_apostrophe(pair[1].text)]
        curly = [pair for pair in inside if any(mark in pair[0].text for mark in APOSTROPHES)]
        if curly or inside:
            add(*(curly or inside)[0], "apostrophe inside a word kept" + (", curly one mapped" if curly else ""))
    for reason, why in ((REJECT_FOREIGN, "a rare letter rejects the row"), (REJECT_DIGITS, "digits reject the row")):
        found = sorted((s for s, r in pairs if r.reason == reason), key=_preference)
        if found:
            detail = language.normalize(found[0].text).detail
            add(found[0], language.normalize(found[0].text), f"{why} ({detail!r})" if detail else why)
        elif reason == REJECT_FOREIGN:
            probe = next(w for w in FOREIGN_PROBES if not any(language.allows(c) for c in w))
            base = kept[0][0].text if kept else ""
            constructed(f"{probe} {base}".strip(), "the release holds no letter this file rejects")
        else:
            base = kept[0][0].text if kept else "a"
            constructed(f"{base} 3", "the release holds no sentence with digits")
    empty = [s for s, r in pairs if r.reason == REJECT_EMPTY]
    if empty:
        add(empty[0], language.normalize(empty[0].text), "only punctuation")
    else:
        constructed(CONSTRUCTED_EMPTY, "only punctuation")
    return cases


# --- writing -------------------------------------------------------------------------------------------------


def yaml_string(text: str) -> str:
    """``text`` as a YAML double-quoted scalar: characters that are not printable are escaped."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _flow_map(mapping: dict) -> str:
    return "{" + ", ".join(f"{yaml_string(key)}: {yaml_string(value)}" for key, value in mapping.items()) + "}"


def _letter_line(char: str, count: int, sentences: int) -> str:
    plural = "" if sentences == 1 else "s"
    return (
        f"{shown(char)} U+{ord(char):04X} {unicodedata.name(char, 'unnamed')}: {count} in {sentences} sentence{plural}"
    )


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f} %" if whole else "0 %"


def decisions(derived: Derived) -> list[str]:
    """Why each key has its value, one line each (the report and the file's header share them)."""
    lang = derived.language
    letters = [char for char in lang.alphabet if char not in " '"]
    apostrophe = "kept" if "'" in lang.alphabet else "not a letter"
    lines = [
        f"alphabet: {len(letters)} letters and marks covering {100 * derived.coverage:.2f} % of "
        f"{'non-Han ' if lang.han else ''}letter occurrences (target {100 * derived.target:.1f} %, most frequent "
        f"first; a letter seen in fewer than {MIN_LETTER_SENTENCES} sentences is never taken)"
        + (", plus space and apostrophe" if "'" in lang.alphabet else ", plus space"),
        f"apostrophe: between two letters in {100 * derived.apostrophe_share:.2f} % of sentences "
        f"(threshold {100 * APOSTROPHE_SHARE:.1f} %): {apostrophe}"
        + ("; curly and grave apostrophes mapped to '" if "'" in lang.alphabet else ""),
        f"script: {derived.script} ({100 * derived.script_share:.1f} % of letters); Han characters "
        f"{100 * derived.han_share:.1f} % of letters -> han: {str(lang.han).lower()}"
        + (" (any Han character allowed; tokenizer coverage 0.9995)" if lang.han else ""),
        f"metric: {lang.metric} ({100 * derived.no_space_share:.1f} % of sentences of {NO_SPACE_MIN_LETTERS}+ letters "
        f"have no space; CER for {', '.join(SCRIPTS_WITHOUT_SPACES[:3])}, ... or when half of them have none)",
        f"character_coverage: {lang.character_coverage}; min/max_chars_per_second: {lang.min_chars_per_second}/"
        f"{lang.max_chars_per_second} (as de.yaml); name: the locale code; espeak_voice and grammar: none "
        f"(synth-cv needs both)",
        "punctuation, symbols and spaces are dropped by Unicode category; digits reject a row",
    ]
    if derived.dotted_i:
        lines.append(
            "dotted/dotless i: the text holds ı or İ. Python's lower() writes İ as i + U+0307 (mapped back to i) "
            "but I as i, not ı: words written in capitals lose the dotless i; check such rows by hand"
        )
    return lines


def render_report(derived: Derived, path: Path) -> str:
    lang = derived.language
    total = len(derived.sentences)
    lines = [
        f"# Language file {derived.code}: draft derived from Common Voice",
        "",
        f"- file: {path}",
        f"- release: {derived.locale_dir}",
        f"- text: {total} distinct sentences from {', '.join(derived.tables)} ({derived.rows_read} rows; "
        f"{derived.skipped_lines} lines skipped as no whole row)",
        f"- letters: {derived.letters_total} occurrences of {len(derived.letter_counts)} distinct letters and "
        "marks, after NFKC, lower case and the maps, in sentences without digits",
        f"- alphabet: `{lang.alphabet}`",
        "",
        "## Decisions",
        "",
        *(f"- {line}" for line in decisions(derived)),
        "",
        "## Sentences each rule removes",
        "",
        "| outcome | sentences | share |",
        "|---|---:|---:|",
    ]
    for outcome in ("kept", REJECT_DIGITS, REJECT_FOREIGN, REJECT_EMPTY):
        count = derived.outcomes.get(outcome, 0)
        label = {REJECT_FOREIGN: "foreign_char (rare or foreign letter)"}.get(outcome, outcome)
        lines.append(f"| {label} | {count} | {_percent(count, total)} |")
    lines += ["", "## Rejected letters (rarer than the coverage needs)", ""]
    if derived.rejected_letters:
        lines += ["| letter | code point | name | count | sentences | example |", "|---|---|---|---:|---:|---|"]
        for char in derived.rejected_letters:
            example = derived.examples[char]
            lines.append(
                f"| {shown(char)} | U+{ord(char):04X} | {unicodedata.name(char, 'unnamed')} | "
                f"{derived.letter_counts[char]} | {derived.letter_sentences[char]} | "
                f"{_cut(example.text).replace('|', '/')} ({example.where}) |"
            )
    else:
        lines.append("none: every letter of the text is in the alphabet")
    lines += [
        "",
        "## Next",
        "",
        "- Read the alphabet and the rejected letters: a letter of the language may be rare in a small release "
        "(add it to `alphabet`), a frequent foreign letter may be in it (remove it). Then check the cases "
        f"with `asr-transfer new-language {derived.code} --check`.",
        f"- The other commands find the file through ${LANGUAGES_ENV} (the folder holding it).",
    ]
    return "\n".join(lines) + "\n"


def render_yaml(derived: Derived, report_name: str) -> str:
    lang = derived.language
    head = [
        f"# Draft language file for Common Voice {derived.code}, written by `asr-transfer new-language` from",
        f"# {len(derived.sentences)} distinct sentences ({', '.join(derived.tables)}); the report is {report_name}.",
        *(f"# {line}" for line in decisions(derived)),
    ]
    if derived.rejected_letters:
        head.append(
            "# Rejected letters (a sentence holding one is rejected as foreign_char): occurrences, sentences, example"
        )
        for char in derived.rejected_letters:
            example = derived.examples[char]
            counts = derived.letter_counts[char], derived.letter_sentences[char]
            head.append(f"#   {_letter_line(char, *counts)}; e.g. {_cut(example.text)!r}")
    body = [
        f"name: {yaml_string(lang.name)}",
        f"alphabet: {yaml_string(lang.alphabet)}",
        f"han: {str(lang.han).lower()}",
        f"maps: {_flow_map(lang.maps)}",
        f"character_coverage: {lang.character_coverage}",
        f"min_chars_per_second: {lang.min_chars_per_second}",
        f"max_chars_per_second: {lang.max_chars_per_second}",
        f"metric: {lang.metric}",
        "cases:",
    ]
    for case, comment in derived.cases:
        items = ", ".join(f"{key}: {yaml_string(value)}" for key, value in case.items())
        body.append(f"  - {{{items}}}  # {comment}")
    return "\n".join(head + body) + "\n"


def default_output(code: str) -> Path:
    folders = user_language_dirs()
    return (folders[0] if folders else Path("languages")) / f"{code}.yaml"


def report_path(path: Path) -> Path:
    return path.with_name(f"{path.name.removesuffix('.yaml')}.report.md")


def write_language_file(derived: Derived, out: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Write ``CODE.yaml`` and ``CODE.report.md`` (atomically), after checking that the file reads back as
    the language decided and that its cases pass."""
    import yaml

    path = Path(out) if out else default_output(derived.code)
    if path.suffix != ".yaml" or path.stem != derived.code:
        raise UserError(f"--out {path} is not named {derived.code}.yaml; language files are found by their code")
    if path.exists() and not force:
        raise UserError(f"{path} exists; pass --force to replace it, or --out another folder's {derived.code}.yaml")
    text = render_yaml(derived, report_path(path).name)
    raw = yaml.safe_load(text)
    written = Language(code=derived.code, **raw)
    if written.alphabet != derived.language.alphabet or written.maps != derived.language.maps:
        raise AssertionError(f"the file for {derived.code} does not read back as written")
    failures = case_failures(written)
    if failures:
        raise AssertionError(f"cases of the file for {derived.code} fail: {failures}")
    with atomic_open(path) as handle:
        handle.write(text)
    with atomic_open(report_path(path)) as handle:
        handle.write(render_report(derived, path))
    return path


# --- command line --------------------------------------------------------------------------------------------


def check_file(code: str) -> tuple[Path, list[str], int]:
    """The file ``code`` resolves to, its failing cases and its number of cases."""
    language = load_language(code)
    return language_path(code), case_failures(language), len(language.cases)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transfer new-language",
        description="Write a draft language file for a Common Voice locale from its release's text: the alphabet "
        "(letters covering 99.9 % of letter occurrences), apostrophes, metric (CER for scripts without word "
        "spaces), Han handling and test cases made of real sentences; a report beside it says why. Put the folder "
        f"in ${LANGUAGES_ENV} and prepare-cv, train-tokenizer, train-lm and finetune use it.",
    )
    parser.add_argument("code", help="the Common Voice locale code (the release's folder name), e.g. tw")
    parser.add_argument(
        "--from",
        dest="source",
        metavar="CV_DIR_OR_TARBALL",
        help="the release: extracted folder at any level, or the .tar.gz (only its text tables are read)",
    )
    parser.add_argument(
        "--out",
        help=f"the file to write, named CODE.yaml (default: the first folder of ${LANGUAGES_ENV}, else "
        "./languages/CODE.yaml); the report goes beside it as CODE.report.md",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing file")
    parser.add_argument(
        "--extract-dir",
        help="extract a tarball fully (resumably) into this folder first, e.g. the folder prepare-cv will use",
    )
    parser.add_argument(
        "--force-lang", action="store_true", help="accept a release whose folder or locale column names another code"
    )
    parser.add_argument(
        "--coverage",
        type=float,
        default=COVERAGE,
        help=f"share of letter occurrences the alphabet covers (default {COVERAGE})",
    )
    parser.add_argument(
        "--check", action="store_true", help="run the cases of the file CODE resolves to; exit 1 if one fails"
    )
    parser.add_argument(
        "--print-path", action="store_true", help="print the file CODE resolves to (nothing when there is none)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.print_path:
        path = language_path(args.code)
        if path is not None:
            print(path)
        return 0
    if args.check:
        path, failures, count = check_file(args.code)
        for failure in failures:
            print(f"case fails: {failure}")
        print(f"{args.code}: {count - len(failures)} of {count} cases pass ({path})")
        return 1 if failures else 0
    if not args.source:
        raise UserError("new-language needs --from CV_DIR_OR_TARBALL (the release whose text it reads)")
    derived = derive_language(args.code, args.source, args.extract_dir, args.force_lang, args.coverage)
    path = write_language_file(derived, args.out, args.force)
    sys.stdout.write(render_report(derived, path))
    print(f"\nwrote {path} and {report_path(path)}")
    folder = path.parent.resolve()
    if folder not in [entry.resolve() for entry in user_language_dirs()]:
        print(f"use it: export {LANGUAGES_ENV}={folder}")
    return 0
