"""Audio that is not 16 kHz mono (other rates, several channels, 24-bit and float samples) through every
command that reads audio, and relative paths written by ``prepare-folder --no-convert``."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

import numpy as np
import soundfile
import soxr

from asr_transfer.cli import main as cli_main
from asr_transfer.fileio import write_manifest
from asr_transfer.synth.espeak import engine
from tests.conftest import CONF, REPO, read_lines

MODEL = str(REPO / "recipes" / "en_base" / "model" / "en_tiny_quartznet_char.nemo")
LONG = "the quick brown fox jumps over the lazy dog"  # over 1 s: NeMo pads shorter arrays, not files


@cache
def _speech(text: str) -> np.ndarray:
    return engine().synthesize(text, "en-gb", 160, 50)


def write_speech(path: Path, text: str, rate: int, channels: int = 1, subtype: str = "PCM_16", seconds=None) -> Path:
    samples = soxr.resample(_speech(text), engine().sample_rate, rate)
    if seconds:
        samples = samples[: int(seconds * rate)]
    # Identical channels average back to the mono signal, so a file and its mono twin must read alike.
    audio = np.repeat(samples[:, None], channels, axis=1) if channels > 1 else samples
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio.astype(np.float32), rate, subtype=subtype)
    if text:
        path.with_suffix(".txt").write_text(text, encoding="utf-8")
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli_main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str, *fragments: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "; " in lines[0], err[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def transcripts(out: str) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def test_transcribe_a_half_second_stereo_44k_wav(tmp_path, capsys):
    clip = write_speech(tmp_path / "stereo.wav", "hello there", 44100, channels=2, seconds=0.5)
    assert soundfile.info(clip).channels == 2
    code, out, err = run(capsys, "transcribe", "--model", MODEL, clip)
    assert code == 0, err[-2000:]
    assert list(transcripts(out)) == [str(clip)]


def test_transcribe_reads_a_float_3_channel_48k_file_as_its_mono_twin(tmp_path, capsys):
    several = write_speech(tmp_path / "three.wav", LONG, 48000, channels=3, subtype="FLOAT")
    mono = write_speech(tmp_path / "mono.wav", LONG, 48000, subtype="FLOAT")
    code, out, err = run(capsys, "transcribe", "--model", MODEL, mono, several)
    assert code == 0, err[-2000:]
    texts = transcripts(out)
    assert list(texts) == [str(mono), str(several)]  # in the order given, although read in two groups
    assert texts[str(mono)].strip() and texts[str(several)] == texts[str(mono)]


def test_transcribe_refuses_a_file_it_cannot_read_before_loading_the_model(tmp_path, capsys):
    good = write_speech(tmp_path / "good.flac", "hello", 8000, subtype="PCM_24")
    (tmp_path / "noise.wav").write_bytes(b"RIFF but no audio at all")
    code, out, err = run(capsys, "transcribe", "--model", MODEL, good, tmp_path / "noise.wav", tmp_path / "gone.wav")
    assert code == 2 and out == ""
    one_error_line(err, "audio unreadable", "noise.wav", "and 1 more")


def test_no_convert_converts_only_what_is_not_16k_mono_and_every_reader_takes_the_result(tmp_path, capsys):
    source = tmp_path / "calls"
    write_speech(source / "stereo.wav", "hello there", 44100, channels=2)
    kept = write_speech(source / "kept.wav", "good morning", 16000)
    write_speech(source / "narrow.flac", "thank you", 8000, subtype="PCM_24")
    out = tmp_path / "out"
    code, _, err = run(capsys, "prepare-folder", source, out, "--lang", "en", "--no-convert", "--no-progress")
    assert code == 0, err[-2000:]
    entries = {Path(entry["audio_filepath"]).stem: entry for entry in read_lines(out / "train.json")}
    assert set(entries) == {"stereo", "kept", "narrow"}
    assert entries["kept"]["audio_filepath"] == str(kept)
    for name in ("stereo", "narrow"):
        path = Path(entries[name]["audio_filepath"])
        info = soundfile.info(path)
        assert path.parent == out / "clips" and (info.channels, info.samplerate) == (1, 16000)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["audio"]["converted_not_16k_mono"] == 2 and summary["rejected"] == 0

    code, printed, _ = run(capsys, "manifest", "validate", out / "train.json")
    assert code == 0, printed
    code, printed, err = run(capsys, "evaluate", "--model", MODEL, "--manifest", out / "train.json")
    assert code == 0, err[-2000:]
    assert "(3 utterances" in printed
    code, _, err = run(
        capsys,
        "finetune",
        "--config",
        CONF / "domain.yaml",
        f"init.nemo={MODEL}",
        f"data.train_manifest={out / 'train.json'}",
        f"data.dev_manifest={out / 'train.json'}",
        f"exp_manager.exp_dir={tmp_path / 'exp'}",
        "trainer.max_steps=1",
        "trainer.val_check_interval=1",
        "trainer.enable_progress_bar=false",
        "data.batch_size=3",
        "data.num_workers=0",
    )
    assert code == 0, err[-3000:]
    assert list((tmp_path / "exp").rglob("*.nemo"))


def test_a_manifest_of_multi_channel_audio_is_reported_evaluated_and_refused_for_training(tmp_path, capsys):
    stereo = write_speech(tmp_path / "audio" / "stereo.wav", "hello there", 44100, channels=2)
    write_speech(tmp_path / "audio" / "three.wav", LONG, 48000, channels=3, subtype="FLOAT")
    manifest = tmp_path / "mixed.json"
    write_manifest(
        manifest,
        [
            {"audio_filepath": str(stereo), "duration": soundfile.info(stereo).duration, "text": "hello there"},
            {"audio_filepath": "audio/three.wav", "duration": 2.7, "text": LONG},
        ],
    )
    code, printed, _ = run(capsys, "manifest", "validate", manifest)
    assert code == 1
    problems = [line for line in printed.splitlines() if "channels" in line]
    assert len(problems) == 2 and "2 channels" in problems[0] and "3 channels" in problems[1]
    assert "prepare-folder" in problems[0]

    code, printed, err = run(capsys, "evaluate", "--model", MODEL, "--manifest", manifest, "--out", tmp_path / "eval")
    assert code == 0, err[-2000:]
    assert len(read_lines(tmp_path / "eval" / "hypotheses.jsonl")) == 2

    code, _, err = run(
        capsys,
        "finetune",
        "--config",
        CONF / "domain.yaml",
        f"init.nemo={MODEL}",
        f"data.train_manifest={manifest}",
        f"data.dev_manifest={manifest}",
        f"exp_manager.exp_dir={tmp_path / 'exp'}",
    )
    assert code == 2
    one_error_line(err, "training manifest", "2 channels", "prepare-folder")
    assert not (tmp_path / "exp").exists()


def test_relative_no_convert_source_is_found_from_another_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip = write_speech(tmp_path / "data" / "src" / "one.wav", "good morning", 16000)
    code, _, err = run(
        capsys, "prepare-folder", "data/src", "data/out", "--lang", "en", "--no-convert", "--no-progress"
    )
    assert code == 0, err[-2000:]
    [entry] = read_lines(tmp_path / "data" / "out" / "train.json")
    assert entry["audio_filepath"] == str(clip)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, printed, _ = run(capsys, "manifest", "validate", "../data/out/train.json")
    assert code == 0, printed
    code, printed, err = run(capsys, "evaluate", "--model", MODEL, "--manifest", "../data/out/train.json")
    assert code == 0 and "(1 utterances" in printed, err[-2000:]
    code, printed, err = run(capsys, "transcribe", "--model", MODEL, "../data/src/one.wav")  # FILES: the cwd's
    assert code == 0 and list(transcripts(printed)) == ["../data/src/one.wav"], err[-2000:]


def test_relative_manifest_source_and_relative_audio_paths_from_another_folder(tmp_path, capsys, monkeypatch):
    """A manifest's relative audio paths are its folder's (NeMo's rule), for every reader and any cwd."""
    write_speech(tmp_path / "data" / "audio" / "two.wav", "thank you", 16000)
    write_speech(tmp_path / "data" / "audio" / "wide.wav", "hello there", 22050, channels=2)
    write_manifest(
        tmp_path / "data" / "old.json",
        [
            {"audio_filepath": "audio/two.wav", "duration": 1.0, "text": "thank you"},
            {"audio_filepath": "audio/wide.wav", "duration": 1.0, "text": "hello there"},
        ],
    )
    monkeypatch.chdir(tmp_path)
    code, _, err = run(
        capsys, "prepare-folder", "data/old.json", "out", "--lang", "en", "--no-convert", "--no-progress"
    )
    assert code == 0, err[-2000:]
    paths = [entry["audio_filepath"] for entry in read_lines(tmp_path / "out" / "train.json")]
    assert paths[0] == str(tmp_path / "data" / "audio" / "two.wav")
    assert paths[1] == str(tmp_path / "out" / "clips" / "audio" / "wide.wav")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for manifest in ("../out/train.json", "../data/old.json"):
        code, printed, err = run(capsys, "evaluate", "--model", MODEL, "--manifest", manifest)
        assert code == 0 and "(2 utterances" in printed, err[-2000:]
    code, out, err = run(capsys, "transcribe", "--model", MODEL, "--manifest", "../data/old.json")
    assert code == 0, err[-2000:]
    assert list(transcripts(out)) == ["audio/two.wav", "audio/wide.wav"]
    code, printed, _ = run(capsys, "manifest", "validate", "../out/train.json")
    assert code == 0, printed


def test_tune_lm_and_shrink_reader_downmixes_and_resamples(tmp_path):
    from asr_transfer.inference.batches import AudioManifest, pad_batch

    stereo = write_speech(tmp_path / "stereo.wav", "hello there", 44100, channels=2, seconds=0.5)
    three = write_speech(tmp_path / "three.flac", "thank you", 48000, channels=3, subtype="PCM_24")
    write_manifest(
        tmp_path / "audio.json",
        [{"audio_filepath": str(stereo)}, {"audio_filepath": os.path.join(".", "three.flac")}],
    )
    audio = AudioManifest(str(tmp_path / "audio.json"), 16000)
    waves = [audio[0], audio[1]]
    assert [wave.dim() for wave in waves] == [1, 1]
    assert abs(len(waves[0]) - 8000) <= 1
    assert abs(len(waves[1]) - soundfile.info(three).duration * 16000) <= 1
    batch, lengths = pad_batch(waves)
    assert batch.shape == (2, max(lengths)) and float(batch[0].abs().max()) > 0.01


def test_evaluate_transcribe_and_tune_lm_read_relative_paths_alike_from_any_folder(tmp_path, capsys, monkeypatch):
    """A manifest of ``clips/x.wav`` paths gives the same results from its own folder and from another one:
    every reader resolves them against the manifest's folder and hands NeMo the resolved path."""
    data = tmp_path / "data"
    write_speech(data / "clips" / "x.wav", LONG, 16000)
    write_speech(data / "clips" / "y.wav", "thank you very much", 22050)
    write_manifest(
        data / "test.json",
        [
            {"audio_filepath": "clips/x.wav", "duration": 3.0, "text": LONG},
            {"audio_filepath": "clips/y.wav", "duration": 1.5, "text": "thank you very much"},
        ],
    )
    code, _, err = run(
        capsys, "train-lm", "--model", MODEL, "--manifest", data / "test.json", "--order", "3", data / "lm.arpa"
    )
    assert code == 0, err[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    results = {}
    for cwd, manifest in ((data, "test.json"), (elsewhere, "../data/test.json")):
        monkeypatch.chdir(cwd)
        out = tmp_path / f"out_{cwd.name}"
        code, _, err = run(capsys, "evaluate", "--model", MODEL, "--manifest", manifest, "--out", out / "eval")
        assert code == 0, err[-2000:]
        code, _, err = run(capsys, "transcribe", "--model", MODEL, "--manifest", manifest, "--out", out / "pred.json")
        assert code == 0, err[-2000:]
        tune = ["--manifest", manifest, "--lm", data / "lm.arpa", "--alphas", "0.5", "--betas", "0", "--beam-size", "2"]
        code, _, err = run(capsys, "tune-lm", "--model", MODEL, *tune, "--out", out / "params.json")
        assert code == 0, err[-2000:]
        summary = json.loads((out / "eval" / "summary.json").read_text(encoding="utf-8"))
        predictions = read_lines(out / "pred.json")
        # the written manifest's relative paths are its own folder's, so they name the same clips
        assert [os.path.normpath(out / entry["audio_filepath"]) for entry in predictions] == [
            str(data / "clips" / "x.wav"),
            str(data / "clips" / "y.wav"),
        ]
        tuned = json.loads((out / "params.json").read_text(encoding="utf-8"))
        results[cwd.name] = (
            (summary["wer"], summary["cer"], summary["utterances"]),
            [entry["hypothesis"] for entry in read_lines(out / "eval" / "hypotheses.jsonl")],
            [entry["pred_text"] for entry in predictions],
            [(point["lm_alpha"], point["beam_beta"], point["wer"]) for point in tuned["grid"]],
        )
    assert results["data"] == results["elsewhere"]
    assert results["data"][0][2] == 2 and any(results["data"][1])  # both scored; the model wrote something
