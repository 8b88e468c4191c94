"""``new-language``: language files derived from a real Common Voice release (Twi) and from synthetic ones,
the user folder of language files, and the Twi file carried through prepare-cv, tokenizer, fine-tuning and
export."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from asr_transfer import cli
from asr_transfer.languages import (
    LANGUAGES_ENV,
    UnknownLanguage,
    available_languages,
    case_failures,
    language_path,
    load_language,
)
from asr_transfer.languages.derive import derive_language
from asr_transfer.synth.synth_cv import synth_cv
from tests.conftest import CONF, REPO, quiet_options, read_lines
from tests.test_errors import assert_one_error_line, run

TW = REPO / "tests" / "data" / "cv_tw"
TW_LOCALE = TW / "cv-corpus-17.0-2024-03-15" / "tw"
EN_BASE = REPO / "recipes" / "en_base" / "model" / "en_tiny_quartznet_char.nemo"


@pytest.fixture(scope="module")
def tw_languages(tmp_path_factory) -> Path:
    """A user language folder holding the tw.yaml that new-language writes from the Twi subset."""
    folder = tmp_path_factory.mktemp("languages")
    assert cli.main(["new-language", "tw", "--from", str(TW), "--out", str(folder / "tw.yaml")]) == 0
    return folder


def test_twi_file_holds_twi_letters_and_its_cases_pass(tw_languages, monkeypatch, capsys):
    monkeypatch.setenv(LANGUAGES_ENV, str(tw_languages))
    language = load_language("tw")
    assert {"ɛ", "ɔ", "'"} <= set(language.alphabet) and language.metric == "wer" and not language.han
    assert language.maps["’"] == "'"
    assert case_failures(language) == []
    reasons = {case.get("reject") for case in language.cases}
    assert {"digits", "foreign_char", "empty_text"} <= reasons
    assert any("ɛ" in case.get("expect", "") for case in language.cases)
    assert language_path("tw") == tw_languages / "tw.yaml" and "tw" in available_languages()
    text = (tw_languages / "tw.yaml").read_text(encoding="utf-8")
    assert "# Rejected letters" in text and "ĩ U+0129" in text  # bla·sphe·miʹa's rare letters, with an example
    report = (tw_languages / "tw.report.md").read_text(encoding="utf-8")
    assert "225 distinct sentences" in report and "| foreign_char" in report
    assert run(capsys, "new-language", "tw", "--check")[0] == 0
    assert run(capsys, "new-language", "tw", "--print-path")[1].strip() == str(tw_languages / "tw.yaml")


def test_tarball_gives_the_same_file_without_extracting_clips(tmp_path):
    tarball = tmp_path / "tw.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for path in sorted(TW_LOCALE.glob("*.tsv")):  # the text tables only: clips are not read
            archive.add(path, arcname=f"cv-corpus-17.0-2024-03-15/tw/{path.name}")
        archive.add(TW_LOCALE / "clips", arcname="cv-corpus-17.0-2024-03-15/tw/clips", recursive=False)
    from_tarball = derive_language("tw", str(tarball))
    from_folder = derive_language("tw", str(TW))
    assert from_tarball.language.alphabet == from_folder.language.alphabet
    assert from_tarball.language.cases == from_folder.language.cases
    extracted = derive_language("tw", str(tarball), extract_dir=str(tmp_path / "x"))  # prepare-cv's extraction
    assert (tmp_path / "x" / ".extracted").is_file() and extracted.language.alphabet == from_folder.language.alphabet
    smaller = derive_language("tw", str(TW), coverage=0.99)
    assert set(smaller.language.alphabet) < set(from_folder.language.alphabet) and smaller.coverage >= 0.99
    assert "l" in smaller.rejected_letters  # 11 of 6231 letters: below a 99 % coverage


def test_user_folder_comes_first_and_a_changed_variable_is_seen(tmp_path, monkeypatch):
    builtin = load_language("de").alphabet
    (tmp_path / "de.yaml").write_text('inherit: de\nalphabet: " abc"\n', encoding="utf-8")
    monkeypatch.setenv(LANGUAGES_ENV, f"{tmp_path / 'missing'}{':'}{tmp_path}")
    assert load_language("de").alphabet == " abc"
    assert load_language("de").maps == {"’": "'", "‘": "'", "`": "'"}  # inherited from the built-in de
    monkeypatch.delenv(LANGUAGES_ENV)
    assert load_language("de").alphabet == builtin


def test_unknown_locale_names_new_language(monkeypatch, tmp_path):
    monkeypatch.setenv(LANGUAGES_ENV, str(tmp_path))
    with pytest.raises(UnknownLanguage, match=r"asr-transfer new-language xx --from CV_DIR"):
        load_language("xx")


def _tiny_release(root: Path, sentences: list[str], locale: str = "xx") -> Path:
    locale_dir = root / "cv-corpus-17.0-2024-03-15" / locale
    (locale_dir / "clips").mkdir(parents=True)
    header = (TW_LOCALE / "dev.tsv").read_text(encoding="utf-8")
    rows = "".join(
        f"c\tcommon_voice_{locale}_{n}.mp3\ts{n}\t{text}\t\t2\t0\t\t\t\t\t{locale}\t\n"
        for n, text in enumerate(sentences)
    )
    for split in ("train", "dev", "test"):
        (locale_dir / f"{split}.tsv").write_text(header + (rows if split == "train" else ""), encoding="utf-8")
    return locale_dir


def test_bad_inputs_are_one_error_line(tmp_path, capsys):
    _tiny_release(tmp_path / "small", ["Ein kurzer Satz."] * 3 + ["Noch einer.", "Und der letzte."])
    code, _, err = run(
        capsys, "new-language", "xx", "--from", str(tmp_path / "small"), "--out", str(tmp_path / "o/xx.yaml")
    )
    assert code == 2
    assert_one_error_line(err, "too little text", "3 distinct sentences")
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "new-language", "xx", "--from", str(tmp_path / "empty"))
    assert code == 2
    assert_one_error_line(err, "is not a Common Voice locale")
    code, _, err = run(capsys, "new-language", "ak", "--from", str(TW))
    assert code == 2
    assert_one_error_line(err, "not ak", "new-language tw")
    out = tmp_path / "langs" / "tw.yaml"
    assert run(capsys, "new-language", "tw", "--from", str(TW), "--out", str(out))[0] == 0
    code, _, err = run(capsys, "new-language", "tw", "--from", str(TW), "--out", str(out))
    assert code == 2
    assert_one_error_line(err, "exists", "--force")
    assert not list(out.parent.glob("*.tmp-*"))


def test_force_replaces_an_existing_file_and_its_report(tmp_path, capsys):
    """--force: the existing file and its report are replaced by the new derivation. A lower --coverage makes
    the second derivation tell apart from the first: "l" (11 of 6231 letters) falls out of the alphabet."""
    import yaml

    out = tmp_path / "langs" / "tw.yaml"
    report = out.with_name("tw.report.md")
    assert run(capsys, "new-language", "tw", "--from", str(TW), "--out", str(out))[0] == 0
    first = (out.read_text(encoding="utf-8"), report.read_text(encoding="utf-8"))
    assert "l" in yaml.safe_load(first[0])["alphabet"] and "| l | U+006C |" not in first[1]
    argv = ["new-language", "tw", "--from", str(TW), "--out", str(out), "--coverage", "0.99"]
    code, _, err = run(capsys, *argv)
    assert code == 2 and "--force" in err  # refused: both files as they were
    assert (out.read_text(encoding="utf-8"), report.read_text(encoding="utf-8")) == first
    assert run(capsys, *argv, "--force")[0] == 0
    alphabet = yaml.safe_load(out.read_text(encoding="utf-8"))["alphabet"]
    assert "l" not in alphabet and set(alphabet) < set(yaml.safe_load(first[0])["alphabet"])
    assert "| l | U+006C |" in report.read_text(encoding="utf-8")
    assert not list(out.parent.glob("*.tmp-*"))


@pytest.mark.parametrize("code", ["de", "es"])
def test_synthetic_releases_give_the_handwritten_alphabet(code, tmp_path, request):
    """The synthetic grammar may not use every letter: what the generated file lacks must be absent from
    the text (or rarer than the coverage), and it must add nothing the hand-written file lacks."""
    if code == "de":
        locale_dir = request.getfixturevalue("faulty_de_corpus")  # with planted digits and foreign script
    else:
        locale_dir = synth_cv(code, 40, str(tmp_path / "cv"), seed=7, progress=False, jobs=2)
    derived = derive_language(code, str(locale_dir))
    handwritten, generated = load_language(code), derived.language
    assert set(generated.alphabet) <= set(handwritten.alphabet)
    for missing in set(handwritten.alphabet) - set(generated.alphabet):
        if missing == "'":
            assert derived.apostrophe_share < 0.001, "the grammar writes no apostrophe inside words"
        else:
            assert missing in derived.rejected_letters or derived.letter_counts[missing] == 0, missing
    assert (generated.metric, generated.han) == (handwritten.metric, handwritten.han)
    assert case_failures(generated) == []
    if code == "de":
        assert derived.outcomes["digits"] >= 1 and "п" in derived.rejected_letters  # the planted "Привет"


def test_twi_trains_from_the_english_base_and_exports(tw_languages, tmp_path, monkeypatch):
    from nemo.collections.asr.models import ASRModel

    from asr_transfer.inference.export import export
    from asr_transfer.manifests.prepare_cv import prepare_common_voice
    from asr_transfer.tokenizers.train import train_tokenizer
    from asr_transfer.training.config import load_config
    from asr_transfer.training.finetune import finetune

    monkeypatch.setenv(LANGUAGES_ENV, str(tw_languages))
    data = tmp_path / "data"
    summary = prepare_common_voice(str(TW), str(data), "tw", quiet_options())
    train, test = read_lines(data / "train.json"), read_lines(data / "test.json")
    assert len(train) >= 35 and len(test) == 8 and not read_lines(data / "dev.json")  # dev.tsv is header-only
    assert summary["splits"]["train"]["rejected_by_reason"].keys() <= {"foreign_char"}
    vocab = train_tokenizer([str(data / "train.json")], "tw", "char", tmp_path / "tok")
    labels = load_language("tw").label_set()
    assert (Path(vocab) / "vocab.txt").read_text(encoding="utf-8").splitlines() == labels
    cfg = load_config(
        str(CONF / "tiny_quartznet_char.yaml"),
        [
            "lang=tw",
            f"init.nemo={EN_BASE}",
            f"vocab.dir={vocab}",
            f"data.train_manifest={data / 'train.json'}",
            f"data.dev_manifest={data / 'test.json'}",  # the release has no dev clips
            f"exp_manager.exp_dir={tmp_path / 'exp'}",
            "trainer.enable_progress_bar=false",
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "data.batch_size=4",
        ],
    )
    run_dir = finetune(cfg)
    exported = tmp_path / "tw.nemo"
    export(str(run_dir), str(exported))
    model = ASRModel.restore_from(str(exported), map_location="cpu")
    assert list(model.decoder.vocabulary) == labels and {"ɛ", "ɔ"} <= set(model.decoder.vocabulary)
    assert isinstance(model.transcribe([test[0]["audio_filepath"]], verbose=False)[0].text, str)


def test_lm_excludes_only_held_out_splits_that_kept_clips(tmp_path):
    """train-lm --prepared on a release whose dev.tsv is empty (Twi): nothing to exclude from dev."""
    from asr_transfer.fileio import write_json
    from asr_transfer.lm.train import prepared_sources

    write_json(tmp_path / "summary.json", {"language": "tw", "splits": {"dev": {"kept": 0}, "test": {"kept": 8}}})
    assert prepared_sources(str(tmp_path))["exclude"] == [str(tmp_path / "test.json")]


def run_recipe(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != LANGUAGES_ENV}
    env["PYTHON"] = sys.executable
    command = ["bash", str(REPO / "recipes" / "cv" / "run.sh"), *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_generic_recipe_needs_a_language():
    result = run_recipe(str(TW))
    assert result.returncode == 2 and result.stderr.strip() == (
        "error: no language given; pass --lang CODE (the Common Voice locale)"
    )
    assert "Stage" not in result.stdout


@pytest.mark.slow
def test_generic_recipe_writes_the_language_file_and_runs_every_stage(tmp_path):
    exp = tmp_path / "exp"
    fast = "trainer.max_steps=2 trainer.val_check_interval=2 data.batch_size=4 trainer.enable_progress_bar=false"
    args = [str(TW), "--lang", "tw", "--out", str(exp), "--config", str(CONF / "tiny_quartznet_char.yaml")]
    args += ["--init_nemo", str(EN_BASE), "--overrides", fast, "--dev_split", "test", "--jobs", "1"]
    result = run_recipe(*args, "--stop_stage", "5")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Stage 0: language file (new-language)" in result.stdout
    assert "ɛ" in (exp / "languages" / "tw.yaml").read_text(encoding="utf-8")
    assert (exp / "languages" / "tw.report.md").is_file() and (exp / "eval_test" / "summary.json").is_file()
    assert (exp / "tw_from_en_tiny_quartznet_char_char.nemo").is_file()
    again = run_recipe(*args, "--stop_stage", "0")  # the file exists now: found, not written again
    assert again.returncode == 0 and "new-language" not in again.stdout and "Stage 0: check input" in again.stdout
