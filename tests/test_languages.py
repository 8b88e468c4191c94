"""Every language file's own test cases, and the rules shared by all languages.

The files are those ``available_languages()`` finds: the built-in ones and, with ``ASR_TRANSFER_LANGUAGES``
set, the user's (``ASR_TRANSFER_LANGUAGES=~/languages pytest tests/test_languages.py`` tests files that
``asr-transfer new-language`` wrote; ``asr-transfer new-language CODE --check`` runs one file's cases).
"""

import pytest

from asr_transfer.errors import UserError
from asr_transfer.languages import UnknownLanguage, available_languages, load_language
from asr_transfer.synth.grammar import vocabulary

CASES = [
    pytest.param(code, case, id=f"{code}:{case['text']}")
    for code in available_languages()
    for case in load_language(code).cases
]


def test_all_languages_present():
    assert {"de", "es", "ru", "yue", "zh-HK", "zh", "en"} <= set(available_languages())


@pytest.mark.parametrize(("code", "case"), CASES)
def test_language_file_case(code, case):
    language = load_language(code).with_options(case.get("options", []))
    result = language.normalize(case["text"])
    assert result.text == case.get("expect")
    assert result.reason == case.get("reject")


@pytest.mark.parametrize("code", available_languages())
def test_every_language_has_cases_for_keeping_and_rejecting(code):
    cases = load_language(code).cases
    assert any("expect" in case for case in cases)
    assert {"digits", "foreign_char"} <= {case.get("reject") for case in cases}


def test_unknown_language_names_the_file_to_add():
    with pytest.raises(UnknownLanguage, match="no language file for 'xx'.*available: de"):
        load_language("xx")


def test_unknown_text_option_is_refused():
    with pytest.raises(UserError, match="has no text option 'nope'.*fold_yo"):
        load_language("ru").with_options(["nope"])


def test_zh_hk_inherits_cantonese_rules():
    zh_hk, yue = load_language("zh-HK"), load_language("yue")
    assert zh_hk.han and zh_hk.character_coverage == yue.character_coverage == 0.9995
    assert zh_hk.grammar == yue.grammar


@pytest.mark.parametrize("code", ["en", "de", "es", "ru", "yue"])
def test_grammar_vocabulary_is_large_and_in_alphabet(code):
    language = load_language(code)
    words = vocabulary(language.grammar)
    assert len(words) >= 80, f"{code} grammar has only {len(words)} words"
    for word in words:
        assert language.normalize(word).reason in (None, "empty_text"), word
