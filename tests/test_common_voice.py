"""prepare-cv on synthetic Common Voice releases: layouts, quoting, faults, accounting, resume, tarballs."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import soundfile

from asr_transfer.cli import main as cli_main
from asr_transfer.manifests.common_voice import HEADERS, NotCommonVoice, read_clip_tsv
from asr_transfer.manifests.pipeline import manifest_path
from asr_transfer.manifests.prepare_cv import prepare_common_voice
from asr_transfer.synth.synth_cv import synth_cv
from tests.conftest import quiet_options, read_lines

SPLITS = ("train", "dev", "test")


def first_tsv_row(locale: Path, split: str) -> list[str]:
    lines = (locale / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return dict(zip(header, lines[1].split("\t"), strict=False))


def test_accounting_every_row_is_kept_or_rejected(prepared_de, faulty_de_corpus):
    out, summary = prepared_de
    rejects = list(csv.DictReader(open(out / "rejects.tsv", encoding="utf-8"), delimiter="\t"))
    for split in SPLITS:
        stats = summary["splits"][split]
        listed = sum(1 for line in open(faulty_de_corpus / f"{split}.tsv", encoding="utf-8")) - 1
        assert stats["rows_in"] == listed
        assert stats["rows_in"] == stats["kept"] + stats["rejected"]
        assert stats["kept"] == len(read_lines(out / f"{split}.json"))
        assert stats["rejected"] == sum(1 for row in rejects if row["split"] == split)


def test_planted_faults_get_their_reasons(prepared_de, faulty_de_corpus):
    out, _ = prepared_de
    rejects = {
        (row["split"], row["path"]): row["reason"]
        for row in csv.DictReader(open(out / "rejects.tsv", encoding="utf-8"), delimiter="\t")
    }
    faults = json.loads((faulty_de_corpus / "faults.json").read_text())
    assert len(faults) >= 9
    for fault in faults:
        key = (fault["split"], fault["path"])
        if fault["reason"] is None:
            assert key not in rejects, fault
        else:
            assert rejects.get(key) == fault["reason"], fault


@pytest.mark.parametrize("split", SPLITS)
def test_first_row_of_every_split_survives(prepared_de, faulty_de_corpus, split):
    out, _ = prepared_de
    first = first_tsv_row(faulty_de_corpus, split)
    entries = read_lines(out / f"{split}.json")
    assert Path(entries[0]["audio_filepath"]).stem == Path(first["path"]).stem
    assert entries[0]["speaker"] == first["client_id"]


def test_unbalanced_quote_is_read_as_text_not_quoting(faulty_de_corpus):
    rows = list(read_clip_tsv(faulty_de_corpus / "train.tsv", "train"))
    listed = (faulty_de_corpus / "train.tsv").read_text(encoding="utf-8").count("\n") - 1
    assert len(rows) == listed
    assert rows[0].sentence.startswith('"')
    # What default CSV quoting does with the same file: the quote swallows rows.
    with open(faulty_de_corpus / "train.tsv", encoding="utf-8", newline="") as handle:
        naive = list(csv.DictReader(handle, delimiter="\t"))
    assert len(naive) < listed


def test_manifest_entries_and_audio(prepared_de):
    out, summary = prepared_de
    entries = read_lines(out / "train.json")
    for entry in entries[:5]:
        info = soundfile.info(entry["audio_filepath"])
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert entry["duration"] == pytest.approx(info.frames / 16000, abs=1e-3)
        assert {"speaker", "gender", "age", "locale", "sentence_id"} <= set(entry)
        assert entry["text"] == entry["text"].lower()
    assert summary["character_inventory"]["ß"] >= 0
    assert set(summary["character_inventory"]) <= set(" 'abcdefghijklmnopqrstuvwxyzäöüß")
    assert summary["splits"]["train"]["hours"] > 0


@pytest.mark.parametrize("version", [1, 5, 8, 13, 16.1, 17, 25])
def test_every_header_layout(tmp_path, version):
    root = synth_cv("es", 12, str(tmp_path / "cv"), seed=int(version), cv_version=version, progress=False)
    header = (root / "train.tsv").read_text(encoding="utf-8").splitlines()[0].split("\t")
    major = max(key for key in HEADERS if key <= int(version))
    assert header == HEADERS[major].split()
    if version < 2:
        assert not first_tsv_row(root, "train")["path"].endswith(".mp3")
    if version < 5:
        assert root == tmp_path / "cv"
    summary = prepare_common_voice(str(tmp_path / "cv"), str(tmp_path / "out"), "es", quiet_options())
    assert summary["kept"] == summary["rows_in"] == 12
    entry = read_lines(tmp_path / "out" / "test.json")[0]
    assert entry["speaker"] and entry["age"]
    assert ("sentence_id" in entry) == (version >= 17)
    assert ("locale" in entry) == (version >= 5)


def test_train_from_validated_keeps_dev_test_speakers_and_sentences_out(tmp_path, faulty_de_corpus):
    summary = prepare_common_voice(
        str(faulty_de_corpus), str(tmp_path), "de", quiet_options(), train_from_validated=True
    )
    counts = summary["train_from_validated"]
    assert counts["added"] > 0 and counts["excluded_speaker"] > 0
    assert counts["validated_rows"] == sum(value for key, value in counts.items() if key != "validated_rows")
    train = read_lines(tmp_path / "train.json")
    held_out = read_lines(tmp_path / "dev.json") + read_lines(tmp_path / "test.json")
    assert not {e["speaker"] for e in train} & {e["speaker"] for e in held_out}
    assert not {e["text"] for e in train} & {e["text"] for e in held_out}
    stats = summary["splits"]["train"]
    assert stats["rows_in"] == stats["kept"] + stats["rejected"]


def test_flac_output(tmp_path, faulty_de_corpus):
    prepare_common_voice(str(faulty_de_corpus), str(tmp_path), "de", quiet_options(audio_format="flac"))
    entry = read_lines(tmp_path / "dev.json")[0]
    assert entry["audio_filepath"].endswith(".flac")
    assert soundfile.info(entry["audio_filepath"]).samplerate == 16000


def test_tarball_input_and_unsafe_members(tmp_path, faulty_de_corpus):
    tarball = tmp_path / "cv-corpus-17.0-2024-03-15-de.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(faulty_de_corpus.parent, arcname=faulty_de_corpus.parent.name)
        evil = tarfile.TarInfo("../escaped.txt")
        evil.size = 4
        archive.addfile(evil, fileobj=__import__("io").BytesIO(b"evil"))
    summary = prepare_common_voice(str(tarball), str(tmp_path / "out"), "de", quiet_options())
    assert summary["kept"] > 40
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out" / "escaped.txt").exists()
    assert (tmp_path / "out" / "extracted" / ".extracted").exists()


def test_rerun_after_kill_resumes_to_the_same_result(tmp_path, faulty_de_corpus, prepared_de):
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "asr_transfer.cli",
        "prepare-cv",
        str(faulty_de_corpus),
        str(out),
        "--lang",
        "de",
        "--jobs",
        "1",
        "--no-progress",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    clips = out / "clips"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(clips.glob("*.wav"))) < 10:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 0 < len(list(clips.glob("*.wav"))) < 50, "the run should have been killed midway"
    for split in SPLITS:
        assert not os.path.exists(manifest_path(out, split)), "a killed run must not leave a finished-looking manifest"
    assert not (out / "summary.json").exists()
    assert subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    assert not [path for path in out.rglob("*") if ".tmp-" in path.name]
    reference, _ = prepared_de
    for split in SPLITS:
        resumed = [{**e, "audio_filepath": Path(e["audio_filepath"]).name} for e in read_lines(out / f"{split}.json")]
        clean = [
            {**e, "audio_filepath": Path(e["audio_filepath"]).name} for e in read_lines(reference / f"{split}.json")
        ]
        assert resumed == clean
    # Rejects are written as found, which depends on --jobs; their set must be the same.
    assert sorted((out / "rejects.tsv").read_text().splitlines()) == sorted(
        (reference / "rejects.tsv").read_text().splitlines()
    )


def test_clear_errors(tmp_path, capsys):
    def prepare_main(argv):
        return cli_main(["prepare-cv", *argv])

    assert prepare_main([str(tmp_path / "nope"), str(tmp_path / "out"), "--lang", "de"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert prepare_main([str(tmp_path / "empty"), str(tmp_path / "out"), "--lang", "de"]) == 2
    assert "is not a Common Voice locale" in capsys.readouterr().err
    assert prepare_main([str(tmp_path / "empty"), str(tmp_path / "out"), "--lang", "xx"]) == 2
    assert "no language file for 'xx'" in capsys.readouterr().err
    with pytest.raises(NotCommonVoice):
        prepare_common_voice(str(tmp_path / "empty"), str(tmp_path / "out"), "de")


def test_wrong_lang_is_refused_and_force_lang_accepts_a_renamed_folder(tmp_path, capsys):
    # Regression: a Spanish release prepared with --lang ru exited 0 with 0 rows kept and no warning.
    root = synth_cv("es", 10, str(tmp_path / "cv"), seed=3, progress=False)
    assert cli_main(["prepare-cv", str(tmp_path / "cv"), str(tmp_path / "out"), "--lang", "ru", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is Common Voice es by its locale column, not ru; pass --lang es" in err
    assert not (tmp_path / "out" / "train.json").exists()

    renamed = root.parent / "spanish_copy"
    root.rename(renamed)
    assert cli_main(["prepare-cv", str(renamed), str(tmp_path / "out"), "--lang", "ru", "--check-only"]) == 2
    assert "is Common Voice es by its locale column, not ru" in capsys.readouterr().err
    assert cli_main(["prepare-cv", str(renamed), str(tmp_path / "out"), "--lang", "es", "--check-only"]) == 2
    assert "the folder is named spanish_copy, not es" in capsys.readouterr().err
    assert (
        cli_main(["prepare-cv", str(renamed), str(tmp_path / "out"), "--lang", "es", "--force-lang", "--no-progress"])
        == 0
    )
    assert len(read_lines(tmp_path / "out" / "train.json")) > 0


def test_old_release_without_locale_column_is_checked_by_clip_names(tmp_path, capsys):
    synth_cv("es", 10, str(tmp_path / "cv"), seed=4, cv_version=3, progress=False)
    assert cli_main(["prepare-cv", str(tmp_path / "cv"), str(tmp_path / "out"), "--lang", "de", "--check-only"]) == 2
    assert "by its clip names, not de" in capsys.readouterr().err
    assert cli_main(["prepare-cv", str(tmp_path / "cv"), str(tmp_path / "out"), "--lang", "es", "--check-only"]) == 0
