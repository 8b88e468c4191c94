"""prepare-folder: audio folders with transcripts, CSV/TSV tables, and existing manifests."""

from __future__ import annotations

import csv

import numpy as np
import soundfile

from asr_transfer.cli import main as cli_main
from asr_transfer.fileio import write_manifest
from asr_transfer.manifests.prepare_folder import main, prepare_folder
from asr_transfer.synth.espeak import engine
from tests.conftest import quiet_options, read_lines


def speak(path, text, rate=44100, channels=2, fmt=None):
    audio = engine().synthesize(text, "en-gb", 160, 50)
    import soxr

    audio = soxr.resample(audio, engine().sample_rate, rate)
    if channels == 2:
        audio = np.stack([audio, audio * 0.5], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio, rate, format=fmt)


def test_folder_with_transcripts(tmp_path):
    source = tmp_path / "calls"
    speak(source / "a" / "one.wav", "please hold the line")
    (source / "a" / "one.txt").write_text("Please hold the line!", encoding="utf-8")
    speak(source / "b" / "one.flac", "your call is important", rate=8000, channels=1)
    (source / "b" / "one.txt").write_text("Your call is important.", encoding="utf-8")
    speak(source / "b" / "two.wav", "no transcript here", rate=22050, channels=1)
    summary = prepare_folder(str(source), str(tmp_path / "out"), "en", quiet_options(), split="calls")
    entries = read_lines(tmp_path / "out" / "calls.json")
    assert sorted(e["text"] for e in entries) == ["please hold the line", "your call is important"]
    assert len({e["audio_filepath"] for e in entries}) == 2, "same-named files in subfolders must not collide"
    for entry in entries:
        info = soundfile.info(entry["audio_filepath"])
        assert (info.samplerate, info.channels) == (16000, 1)
    assert summary["splits"]["calls"]["rejected_by_reason"] == {"malformed_row": 1}
    assert summary["rows_in"] == 3


def test_csv_and_tsv_tables(tmp_path):
    speak(tmp_path / "audio" / "x.wav", "good morning")
    speak(tmp_path / "audio" / "y.wav", "good evening")
    with open(tmp_path / "table.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "transcript", "speaker"])
        writer.writerow(["audio/x.wav", "Good morning, sir", "s1"])
        writer.writerow(["audio/y.wav", "Good evening", "s2"])
        writer.writerow(["audio/missing.wav", "Gone", "s3"])
    summary = prepare_folder(str(tmp_path / "table.csv"), str(tmp_path / "out"), "en", quiet_options())
    assert summary["kept"] == 2 and summary["splits"]["train"]["rejected_by_reason"] == {"missing_clip": 1}
    (tmp_path / "table.tsv").write_text('path\ttext\naudio/x.wav\t"unbalanced quote\naudio/y.wav\tok then\n')
    summary = prepare_folder(str(tmp_path / "table.tsv"), str(tmp_path / "out2"), "en", quiet_options())
    assert [e["text"] for e in read_lines(tmp_path / "out2" / "train.json")] == ["unbalanced quote", "ok then"]


def test_existing_manifest_is_revalidated_in_place(tmp_path):
    speak(tmp_path / "a.wav", "hello there", rate=16000, channels=1)
    speak(tmp_path / "b.wav", "general", rate=16000, channels=1)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really audio")
    write_manifest(
        tmp_path / "old.json",
        [
            {"audio_filepath": "a.wav", "duration": 9.9, "text": "Hello there", "speaker": "k"},
            {"audio_filepath": str(tmp_path / "b.wav"), "duration": 1.0, "text": "General 66"},
            {"audio_filepath": "broken.wav", "duration": 1.0, "text": "broken"},
        ],
    )
    code = main([str(tmp_path / "old.json"), str(tmp_path / "out"), "--lang", "en", "--no-convert", "--no-progress"])
    assert code == 0
    entries = read_lines(tmp_path / "out" / "train.json")
    assert len(entries) == 1
    assert entries[0]["audio_filepath"] == str(tmp_path / "a.wav")
    assert entries[0]["duration"] < 5 and entries[0]["speaker"] == "k"
    rejects = (tmp_path / "out" / "rejects.tsv").read_text()
    assert "\tdigits\t" in rejects and "\tundecodable_clip\t" in rejects


def test_bad_source_is_a_clear_error(tmp_path, capsys):
    assert cli_main(["prepare-folder", str(tmp_path / "nothing"), str(tmp_path / "out"), "--lang", "en"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    assert cli_main(["prepare-folder", str(tmp_path / "t.csv"), str(tmp_path / "out"), "--lang", "en"]) == 2
    assert "no path column" in capsys.readouterr().err
