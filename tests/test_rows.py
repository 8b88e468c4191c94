"""Rows that lose or gain text: a quote or a line break never merges rows nor keeps half a sentence (every
line ends kept or rejected, rows in = kept + rejected), and a one-word clip between pauses passes the lower
bound on characters per second that a clip saying something else than its text still fails."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from asr_transfer.manifests.prepare_cv import prepare_common_voice
from asr_transfer.manifests.prepare_folder import prepare_folder
from asr_transfer.manifests.shar import ShardOptions
from asr_transfer.synth.espeak import engine
from asr_transfer.synth.synth_cv import synth_cv
from tests.conftest import quiet_options, read_lines

RATE = 16000
LONG_ES = "Estamos construyendo una plataforma de lanzamiento para el cohete que saldrá mañana temprano"
LONG_EN = "The committee will publish its final report on the new harbour bridge early next spring"


def spoken(text: str, voice: str, before: float = 0.0, after: float = 0.0, seed: int = 0) -> np.ndarray:
    """espeak-ng speech at 16 kHz between pauses, over a faint noise floor as a microphone has."""
    audio = engine().synthesize(text, voice, 160, 50)
    audio = soxr.resample(audio, engine().sample_rate, RATE).astype(np.float32)
    audio = np.concatenate([np.zeros(int(before * RATE), np.float32), audio, np.zeros(int(after * RATE), np.float32)])
    return audio + np.random.default_rng(seed).normal(0, 0.002, audio.size).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, samples, RATE)


def rejects(out: Path) -> list[dict]:
    lines = (out / "rejects.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def assert_accounted(summary: dict, out: Path) -> None:
    listed = rejects(out)
    for split, stats in summary["splits"].items():
        assert stats["rows_in"] == stats["kept"] + stats["rejected"]
        assert stats["kept"] == len(read_lines(out / f"{split}.json"))
        assert stats["rejected"] == sum(1 for row in listed if row["split"] == split)


def english_clips(folder: Path, *texts: str) -> None:
    for number, text in enumerate(texts):
        write_wav(folder / f"{number}.wav", spoken(text, "en-gb", 0.2, 0.2))


# prepare-folder tables: each physical line is one row, parsed on its own


def test_csv_quote_that_never_closes_swallows_no_row(tmp_path):
    english_clips(tmp_path / "audio", "good morning", "good evening", "hello world")
    (tmp_path / "audio" / "1.wav").rename(tmp_path / "audio" / "clip3.wav")  # a name with a digit, as in the report
    table = tmp_path / "table.csv"
    table.write_text(
        'path,text\naudio/0.wav,"Good morning\naudio/clip3.wav,Good evening\naudio/2.wav,"Hello, world"\n',
        encoding="utf-8",
    )
    summary = prepare_folder(str(table), str(tmp_path / "out"), "en", quiet_options())
    assert (summary["rows_in"], summary["kept"]) == (3, 2)
    assert [e["text"] for e in read_lines(tmp_path / "out" / "train.json")] == ["good evening", "hello world"]
    [reject] = rejects(tmp_path / "out")
    assert (reject["path"], reject["reason"]) == ("audio/0.wav", "malformed_row")
    assert reject["detail"].startswith("line 2:")
    assert_accounted(summary, tmp_path / "out")


def test_tsv_extra_tab_and_csv_field_holding_a_line_break_are_malformed(tmp_path):
    english_clips(tmp_path / "audio", "good morning", "good evening")
    tsv = tmp_path / "table.tsv"
    tsv.write_text("path\ttext\naudio/0.wav\tgood\tmorning\naudio/1.wav\tgood evening\n", encoding="utf-8")
    summary = prepare_folder(str(tsv), str(tmp_path / "out_tsv"), "en", quiet_options())
    assert (summary["rows_in"], summary["kept"]) == (2, 1)
    assert [(r["path"], r["reason"]) for r in rejects(tmp_path / "out_tsv")] == [("audio/0.wav", "malformed_row")]
    assert "line 2 has 3 fields, the header 2" in rejects(tmp_path / "out_tsv")[0]["detail"]
    assert_accounted(summary, tmp_path / "out_tsv")

    table = tmp_path / "table.csv"
    with open(table, "w", encoding="utf-8", newline="") as handle:  # standard CSV: the field is quoted
        csv.writer(handle, lineterminator="\n").writerows(
            [["path", "text"], ["audio/0.wav", "good\nmorning"], ["audio/1.wav", "good evening"]]
        )
    summary = prepare_folder(str(table), str(tmp_path / "out_csv"), "en", quiet_options())
    assert (summary["rows_in"], summary["kept"], summary["rejected"]) == (3, 1, 2)  # both pieces, neither kept
    assert [e["text"] for e in read_lines(tmp_path / "out_csv" / "train.json")] == ["good evening"]
    details = [r["detail"] for r in rejects(tmp_path / "out_csv")]
    assert [d.split()[1].rstrip(":") for d in details] == ["2", "3"]
    assert_accounted(summary, tmp_path / "out_csv")


# Common Voice clip TSVs: a row is whole only with the header's field count


@pytest.fixture(scope="module")
def spanish_release(tmp_path_factory) -> Path:
    """A small v17 Spanish release; tests edit copies of it."""
    return synth_cv("es", 12, str(tmp_path_factory.mktemp("cv_es")), seed=5, progress=False)


def copied_release(release: Path, tmp_path: Path) -> Path:
    corpus = release.parent.parent
    shutil.copytree(corpus, tmp_path / corpus.name)
    return tmp_path / corpus.name / release.parent.name / release.name


def edit_tsv(path: Path, line_number: int, edit) -> dict:
    """Replace physical line ``line_number`` (the header is 1) by ``edit(fields)``; return its fields by name."""
    lines = path.read_text(encoding="utf-8").split("\n")
    header, fields = lines[0].split("\t"), lines[line_number - 1].split("\t")
    lines[line_number - 1] = edit(fields)
    path.write_text("\n".join(lines), encoding="utf-8")
    return dict(zip(header, fields, strict=True))


def test_clip_tsv_sentence_cut_by_a_line_break_rejects_both_pieces(spanish_release, tmp_path):
    locale = copied_release(spanish_release, tmp_path)
    sentence_at = (locale / "train.tsv").read_text(encoding="utf-8").split("\n")[0].split("\t").index("sentence")

    def cut(fields):
        first, rest = fields[sentence_at].split(" ", 1)
        return "\t".join(fields[:sentence_at] + [first + "\n" + rest] + fields[sentence_at + 1 :])

    row = edit_tsv(locale / "train.tsv", 3, cut)
    out = tmp_path / "out"
    summary = prepare_common_voice(str(locale), str(out), "es", quiet_options())
    listed = (locale / "train.tsv").read_text(encoding="utf-8").count("\n") - 1  # lines after the header
    assert summary["splits"]["train"]["rows_in"] == listed
    malformed = [r for r in rejects(out) if r["reason"] == "malformed_row"]
    assert [r["detail"].split()[1] for r in malformed] == ["3", "4"]
    assert malformed[0]["path"] == row["path"]
    train = read_lines(out / "train.json")
    assert all(Path(e["audio_filepath"]).stem != Path(row["path"]).stem for e in train)
    half = row["sentence"].split(" ", 1)[0].lower()
    assert all(e["text"] != half and not row["sentence"].lower().endswith(e["text"]) for e in train)
    assert_accounted(summary, out)


def test_clip_tsv_row_with_a_missing_field_is_malformed(spanish_release, tmp_path):
    locale = copied_release(spanish_release, tmp_path)
    row = edit_tsv(locale / "dev.tsv", 2, lambda fields: "\t".join(fields[:-2] + fields[-1:]))  # one tab lost
    out = tmp_path / "out"
    summary = prepare_common_voice(str(locale), str(out), "es", quiet_options())
    [reject] = rejects(out)
    assert (reject["split"], reject["path"], reject["reason"]) == ("dev", row["path"], "malformed_row")
    assert reject["detail"] == "line 2 has 12 fields, the header 13 (a line break inside a field?)"
    assert summary["rows_in"] == summary["kept"] + 1
    assert_accounted(summary, out)


# train-lm --cv-sentences: validated_sentences.tsv is quoted, and still read a line at a time


def test_cv_sentences_cut_by_a_line_break_are_rejected_not_learned(tmp_path, tiny_base):
    from asr_transfer.cli import main as cli_main

    sentences = tmp_path / "validated_sentences.tsv"
    header = ["sentence_id", "sentence", "sentence_domain", "source", "is_used", "clips_count"]
    with open(sentences, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")  # quoted CSV-style, as the real file
        writer.writerow(header)
        writer.writerow(["a1", "the cat sat on the mat", "", "grammar", 1, 0])
        writer.writerow(["a2", 'she said "hello" to the dog', "", "grammar", 1, 0])  # doubled quotes: whole
        writer.writerow(["a3", "a bird\nsang loudly", "", "grammar", 1, 0])  # quoted, with a line break
        handle.write("a4\tthe fish\nswam away\t\tgrammar\t1\t0\n")  # unquoted, with a line break
    out = tmp_path / "lm.arpa"
    argv = ["train-lm", "--model", tiny_base, "--cv-sentences", str(sentences), "--lang", "en", "--order", "3",
            str(out)]  # fmt: skip
    assert cli_main(argv) == 0
    report = json.loads((tmp_path / "lm.arpa.json").read_text())
    assert report["sentences"] == 2 and report["rejected"] == {"malformed row": 4}
    with open(tmp_path / "lm.arpa.rejects.tsv", encoding="utf-8", newline="") as handle:
        listed = list(csv.DictReader(handle, delimiter="\t"))
    assert [int(row["line"]) for row in listed] == [4, 5, 6, 7]
    assert all(row["reason"].startswith("malformed row: line ") for row in listed)


# the lower bound on characters per second is measured on the speech, without the pauses around it


def replace_clip(locale: Path, split: str, line_number: int, samples: np.ndarray, sentence: str) -> str:
    """Give row ``line_number`` of ``split`` new audio (32 kHz MP3, as Common Voice's) and a new sentence."""
    header = (locale / f"{split}.tsv").read_text(encoding="utf-8").split("\n")[0].split("\t")

    def edit(fields):
        fields[header.index("sentence")] = sentence
        return "\t".join(fields)

    path = edit_tsv(locale / f"{split}.tsv", line_number, edit)["path"]
    soundfile.write(locale / "clips" / path, soxr.resample(samples, RATE, 32000), 32000, format="MP3")
    return path


def test_one_word_clip_between_pauses_is_kept_by_every_builder(spanish_release, tmp_path):
    locale = copied_release(spanish_release, tmp_path)
    (locale / "clip_durations.tsv").unlink()  # the clips change; their listed durations would not
    word = replace_clip(locale, "train", 2, spoken("sí", "es", 1.2, 1.2), "Sí.")  # 2.66 s, 0.3 s of it speech
    wrong = replace_clip(locale, "train", 3, spoken(LONG_ES, "es", 0.3, 0.3), "Sí.")  # a sentence labelled "sí"
    for name, shar in (("clips", None), ("shards", ShardOptions(1))):
        out = tmp_path / name
        summary = prepare_common_voice(str(locale), str(out), "es", quiet_options(), shar=shar)
        train = {Path(e["audio_filepath"]).stem: e["text"] for e in read_lines(out / "train.json")}
        assert train[Path(word).stem] == "sí", name
        assert Path(wrong).stem not in train, name
        assert {r["path"]: r["reason"] for r in rejects(out)} == {wrong: "too_few_chars_per_second"}, name
        assert_accounted(summary, out)


def test_one_word_english_clip_kept_and_mislabelled_or_silent_clips_caught(tmp_path):
    clips = {
        "word.wav": (spoken("no", "en-gb", 1.3, 1.3), "No."),  # 2.95 s with its pauses
        "sentence.wav": (spoken(LONG_EN, "en-gb", 0.3, 0.3), "No."),
        "noise.wav": (np.random.default_rng(3).normal(0, 0.01, 3 * RATE).astype(np.float32), "No."),
    }
    for name, (samples, _) in clips.items():
        write_wav(tmp_path / "audio" / name, samples)
    table = tmp_path / "table.tsv"
    table.write_text("path\ttext\n" + "".join(f"audio/{n}\t{t}\n" for n, (_, t) in clips.items()), encoding="utf-8")
    for name, convert in (("converted", True), ("in_place", False)):
        out = tmp_path / name
        summary = prepare_folder(str(table), str(out), "en", quiet_options(convert=convert))
        assert [e["text"] for e in read_lines(out / "train.json")] == ["no"], name
        assert {r["path"]: r["reason"] for r in rejects(out)} == {
            "audio/sentence.wav": "too_few_chars_per_second",
            "audio/noise.wav": "too_few_chars_per_second",
        }, name
        assert_accounted(summary, out)
