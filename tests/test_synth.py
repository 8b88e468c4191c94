"""synth-cv: layout, speakers disjoint across splits, sample rates, accents, reproducibility."""

from __future__ import annotations

import soundfile

from asr_transfer.cli import main as cli_main
from asr_transfer.manifests.common_voice import read_clip_tsv
from asr_transfer.synth.synth_cv import synth_cv


def test_layout_and_speaker_disjoint_splits(faulty_de_corpus):
    root = faulty_de_corpus
    assert root.parent.name == "cv-corpus-17.0-2024-03-15" and root.name == "de"
    for name in ("train", "dev", "test", "validated", "invalidated", "other", "reported"):
        assert (root / f"{name}.tsv").is_file()
    speakers = {
        split: {row.speaker for row in read_clip_tsv(root / f"{split}.tsv", split)}
        for split in ("train", "dev", "test")
    }
    assert not speakers["train"] & speakers["dev"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["dev"] & speakers["test"]
    durations = (root / "clip_durations.tsv").read_text().splitlines()
    assert durations[0] == "clip\tduration[ms]" and len(durations) > 60


def test_mp3_rates_and_mono(faulty_de_corpus):
    rates = set()
    for clip in sorted((faulty_de_corpus / "clips").glob("*.mp3"))[:20]:
        if clip.stat().st_size > 1000:
            info = soundfile.info(clip)
            assert info.channels == 1
            rates.add(info.samplerate)
    assert rates == {32000, 48000}


def test_accents_and_same_seed_same_corpus(tmp_path):
    args = [
        "synth-cv",
        "--lang",
        "en",
        "--clips",
        "12",
        "--accent",
        "en-gb-scotland",
        "--accent",
        "en-029",
        "--seed",
        "5",
        "--no-progress",
    ]
    assert cli_main([*args, str(tmp_path / "a")]) == 0
    assert cli_main([*args, str(tmp_path / "b")]) == 0
    tsv_a = next((tmp_path / "a").rglob("train.tsv")).read_text()
    tsv_b = next((tmp_path / "b").rglob("train.tsv")).read_text()
    assert tsv_a == tsv_b
    accents = {row.accents for row in read_clip_tsv(next((tmp_path / "a").rglob("validated.tsv")), "v")}
    assert accents == {"en-gb-scotland", "en-029"}


def test_cantonese_corpus(tmp_path):
    root = synth_cv("yue", 12, str(tmp_path), seed=1, progress=False)
    rows = list(read_clip_tsv(root / "train.tsv", "train"))
    assert all(any("\u4e00" <= char <= "\u9fff" for char in row.sentence) for row in rows)


def test_language_without_grammar_is_refused(tmp_path, capsys, monkeypatch):
    import dataclasses

    from asr_transfer.languages import load_language

    without = dataclasses.replace(load_language("zh"), grammar=None)
    monkeypatch.setattr("asr_transfer.synth.synth_cv.load_language", lambda code: without)
    assert cli_main(["synth-cv", "--lang", "zh", str(tmp_path)]) == 2
    assert "has no grammar" in capsys.readouterr().err
