"""Noise and reverberation from the user's recordings: prepare-noise, data.noise_* / data.rir_* keys.

The audio the model sees is read back from the training dataloader that ``dataset_config`` builds (NeMo's
own dataset and perturbations), on a fixed seed, and compared with the clean clip: the measured SNR must be
the configured one.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from lightning.pytorch import Callback
from omegaconf import OmegaConf
from scipy.signal import fftconvolve

from asr_transfer.errors import UserError
from asr_transfer.manifests.prepare_noise import prepare_noise
from asr_transfer.training.data import check_augmentation, dataset_config
from tests.conftest import CONF, ENGLISH, REPO
from tests.nemo_models import tiny_char_model

RATE = 16000
SHIPPED = REPO / "recipes" / "en_base" / "model" / "en_tiny_quartznet_char.nemo"


def write(path, samples, rate=RATE):
    soundfile.write(str(path), samples, rate, subtype="PCM_16")
    return str(path)


def manifest(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A 2 s clean 'speech' clip (harmonic tones with a syllable envelope), a 6 s noise clip, one RIR."""
    root = tmp_path_factory.mktemp("augment")
    rng = np.random.default_rng(0)
    t = np.arange(2 * RATE) / RATE
    speech = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 660 * t)) * (
        0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    )
    noise = 0.3 * rng.standard_normal(6 * RATE).clip(-3, 3) / 3
    rir = np.zeros(RATE // 4)
    rir[0] = 1.0
    rir[1:] = rng.standard_normal(RATE // 4 - 1) * np.exp(-np.arange(1, RATE // 4) / (0.03 * RATE)) * 0.3
    clean = write(root / "clean.wav", speech.astype(np.float32))
    return {
        "root": root,
        "clean": clean,
        "clean_manifest": manifest(root / "train.json", [{"audio_filepath": clean, "duration": 2.0, "text": "abc"}]),
        "noise": manifest(
            root / "noise.json",
            [{"audio_filepath": write(root / "noise.wav", noise.astype(np.float32)), "duration": 6.0, "text": ""}],
        ),
        "rir_samples": rir,
        "rir": manifest(
            root / "rir.json",
            [{"audio_filepath": write(root / "rir.wav", (rir * 0.9).astype(np.float32)), "duration": 0.25, "text": ""}],
        ),
    }


def data_cfg(**keys):
    base = {"batch_size": 1, "num_workers": 0, "max_duration": 20.0, "min_duration": 0.1, "speed_perturb": False,
            "bucketing": False, "noise_snr_db": [0.0, 20.0], "noise_prob": 0.5, "rir_prob": 0.5}  # fmt: skip
    return OmegaConf.create({**base, **keys})


def seen_audio(cfg, clips, draws=1) -> list[np.ndarray]:
    """What the training dataloader hands the model for the one-clip manifest, ``draws`` times."""
    model = tiny_char_model(ENGLISH)
    model.setup_training_data(dataset_config(model, clips["clean_manifest"], cfg, train=True))
    out = []
    for _ in range(draws):
        signal, length, *_ = next(iter(model._train_dl))
        out.append(signal[0, : int(length[0])].numpy().astype(np.float64))
    return out


def snr_db(clean: np.ndarray, seen: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(clean**2) / np.mean((seen - clean) ** 2)))


def test_noise_manifest_mixes_at_the_configured_snr(clips):
    clean = soundfile.read(clips["clean"], dtype="float64")[0]
    random.seed(0)  # NeMo's NoisePerturbation draws the SNR and the noise offset from Python's random
    (exact,) = seen_audio(data_cfg(noise_manifest=clips["noise"], noise_prob=1.0, noise_snr_db=[5.0, 5.0]), clips)
    assert len(exact) == len(clean) and not np.allclose(exact, clean)
    assert snr_db(clean, exact) == pytest.approx(5.0, abs=0.1)
    random.seed(1)
    ranged = seen_audio(data_cfg(noise_manifest=clips["noise"], noise_prob=1.0, noise_snr_db=[0.0, 10.0]), clips, 4)
    measured = [snr_db(clean, audio) for audio in ranged]
    assert all(-0.1 <= value <= 10.1 for value in measured) and max(measured) - min(measured) > 0.5, measured
    # noise_prob=0 leaves the audio clean
    (untouched,) = seen_audio(data_cfg(noise_manifest=clips["noise"], noise_prob=0.0), clips)
    assert np.allclose(untouched, clean, atol=1e-4)


def test_rir_manifest_convolves_with_the_impulse_response(clips):
    clean = soundfile.read(clips["clean"], dtype="float64")[0]
    (seen,) = seen_audio(data_cfg(rir_manifest=clips["rir"], rir_prob=1.0), clips)
    rir = soundfile.read(str(clips["root"] / "rir.wav"), dtype="float64")[0]
    rir = (rir - rir.mean()) / np.max(np.abs(rir - rir.mean()))  # NeMo's normalize_impulse
    expected = fftconvolve(clean, rir)[np.argmax(np.abs(rir)) :][: len(clean)]
    expected /= np.max(np.abs(expected))
    assert not np.allclose(seen, clean / np.max(np.abs(clean)), atol=1e-2)
    assert np.max(np.abs(seen - expected)) < 1e-3


def test_bad_augmentation_input_is_one_error_line(clips, tmp_path, capsys):
    with pytest.raises(UserError, match="min > max"):
        check_augmentation(data_cfg(noise_manifest=clips["noise"], noise_snr_db=[10, 0]))
    empty = manifest(tmp_path / "gone.json", [{"audio_filepath": str(tmp_path / "nope.wav"), "duration": 3.0}])
    with pytest.raises(UserError, match="no usable clip"):
        check_augmentation(data_cfg(rir_manifest=empty))
    with pytest.raises(UserError, match="not a probability"):
        check_augmentation(data_cfg(noise_manifest=clips["noise"], noise_prob=1.5))
    # through the console script: one error line, exit status 2, before the base is restored
    from asr_transfer.cli import main as cli_main

    for key, wanted in ((["data.noise_snr_db=[10,0]"], "min > max"), ([f"data.noise_manifest={empty}"], "no usable")):
        status = cli_main(
            ["finetune", "--config", str(CONF / "domain.yaml"), f"init.nemo={SHIPPED}",
             f"data.train_manifest={clips['clean_manifest']}", f"data.dev_manifest={clips['clean_manifest']}",
             f"exp_manager.exp_dir={tmp_path / 'exp'}", f"data.noise_manifest={clips['noise']}", *key]
        )  # fmt: skip
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(err) == 1 and err[0].startswith("error: ") and wanted in err[0], err


def test_prepare_noise_converts_and_rejects(tmp_path):
    source = tmp_path / "field"
    (source / "hall").mkdir(parents=True)
    rng = np.random.default_rng(1)
    write(source / "hall" / "fan.wav", (0.1 * rng.standard_normal((44100 * 2, 2))).astype(np.float32), 44100)
    write(source / "hum.flac", (0.2 * np.sin(np.arange(RATE) / 5)).astype(np.float32))
    write(source / "quiet.wav", np.zeros(RATE, dtype=np.float32))
    write(source / "click.wav", np.ones(800, dtype=np.float32) * 0.1)
    (source / "broken.wav").write_bytes(b"RIFF not audio")
    summary = prepare_noise(str(source), str(tmp_path / "out"))
    assert summary["kept"] == 2 and summary["rejected_by_reason"] == {
        "silent_clip": 1,
        "too_short": 1,
        "undecodable_clip": 1,
    }
    rows = [json.loads(line) for line in (tmp_path / "out" / "noise.json").read_text().splitlines()]
    for row in rows:
        info = soundfile.info(row["audio_filepath"])
        assert (info.samplerate, info.channels) == (RATE, 1) and row["duration"] == pytest.approx(
            info.duration, abs=1e-3
        )
    assert sorted(row["duration"] for row in rows) == pytest.approx([1.0, 2.0], abs=1e-3)
    assert "broken.wav\tundecodable_clip" in (tmp_path / "out" / "rejects.tsv").read_text()
    # a folder with no usable clip: one error line from the console script, exit status 2
    (tmp_path / "silent").mkdir()
    write(tmp_path / "silent" / "a.wav", np.zeros(RATE, dtype=np.float32))
    result = subprocess.run(
        [sys.executable, "-m", "asr_transfer.cli", "prepare-noise", str(tmp_path / "silent"), str(tmp_path / "o2")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "no usable noise clip" in result.stderr


def test_prepare_noise_min_duration_and_name(tmp_path, capsys):
    """--min-duration 1.5 leaves out the 1 s clip the default 0.5 keeps (rejected as too_short and reported);
    --min-duration 0.01 keeps the 50 ms impulse response the default rejects; --name names the manifest."""
    from asr_transfer.cli import main as cli_main

    source = tmp_path / "field"
    source.mkdir()
    rng = np.random.default_rng(2)
    write(source / "long.wav", (0.1 * rng.standard_normal(2 * RATE)).astype(np.float32))
    write(source / "short.wav", (0.1 * rng.standard_normal(RATE)).astype(np.float32))
    write(source / "ir.wav", (0.5 * np.exp(-np.arange(800) / 80.0)).astype(np.float32))

    def prepared(out, *options):
        assert cli_main(["prepare-noise", str(source), str(out), *options]) == 0
        printed = capsys.readouterr().out
        summary = json.loads((out / "summary.json").read_text())
        rejects = (out / "rejects.tsv").read_text().splitlines()[1:]
        return printed, summary, {line.split("\t")[0]: line.split("\t")[1:] for line in rejects}

    printed, summary, rejects = prepared(tmp_path / "long", "--min-duration", "1.5", "--name", "hall")
    rows = [json.loads(line) for line in (tmp_path / "long" / "hall.json").read_text().splitlines()]
    assert not (tmp_path / "long" / "noise.json").exists() and summary["manifest"].endswith("/long/hall.json")
    assert [row["duration"] for row in rows] == [2.0] and summary["rejected_by_reason"] == {"too_short": 2}
    assert rejects["short.wav"] == ["too_short", "1.000 s < 1.5 s"] and rejects["ir.wav"][0] == "too_short"
    assert "2 rejected (too_short 2)" in printed and printed.rstrip().endswith("hall.json")
    printed, summary, rejects = prepared(tmp_path / "rir", "--min-duration", "0.01", "--name", "rir")
    rows = [json.loads(line) for line in (tmp_path / "rir" / "rir.json").read_text().splitlines()]
    assert sorted(row["duration"] for row in rows) == [0.05, 1.0, 2.0] and rejects == {}
    _, summary, rejects = prepared(tmp_path / "default")  # the defaults: noise.json, 0.5 s
    assert summary["kept"] == 2 and list(rejects) == ["ir.wav"] and (tmp_path / "default" / "noise.json").is_file()


class FirstBatch(Callback):
    """The audio of the first training batch, as the model received it."""

    def __init__(self):
        self.audio: list[np.ndarray] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.audio:
            signal, length = batch[0], batch[1]
            self.audio = [
                signal[i, : int(length[i])].detach().cpu().numpy().astype(np.float64) for i in range(len(length))
            ]


def test_finetune_trains_on_reverberant_noisy_audio(clips, tmp_path):
    """finetune with data.rir_* and data.noise_* trains two steps on audio that is the clean clip convolved
    with the impulse response (NeMo's ImpulsePerturbation) plus noise at the configured SNR (then
    NoisePerturbation): the first batch the model received is measured against both."""
    from asr_transfer.training.config import load_config
    from asr_transfer.training.finetune import finetune

    cfg = load_config(
        str(CONF / "domain.yaml"),
        [f"init.nemo={SHIPPED}", f"data.train_manifest={clips['clean_manifest']}",
         f"data.dev_manifest={clips['clean_manifest']}", f"exp_manager.exp_dir={tmp_path / 'exp'}",
         "trainer.enable_progress_bar=false", "data.batch_size=1", "data.min_duration=0.1", "trainer.max_steps=2",
         "trainer.val_check_interval=2", f"data.rir_manifest={clips['rir']}", "data.rir_prob=1.0",
         f"data.noise_manifest={clips['noise']}", "data.noise_snr_db=[3,3]", "data.noise_prob=1.0"],
    )  # fmt: skip
    probe = FirstBatch()
    random.seed(0)
    finetune(cfg, callbacks=(probe,))
    (seen,) = probe.audio
    clean = soundfile.read(clips["clean"], dtype="float64")[0]
    rir = soundfile.read(str(clips["root"] / "rir.wav"), dtype="float64")[0]
    rir = (rir - rir.mean()) / np.max(np.abs(rir - rir.mean()))  # NeMo's normalize_impulse
    reverberant = fftconvolve(clean, rir)[np.argmax(np.abs(rir)) :][: len(clean)]
    reverberant /= np.max(np.abs(reverberant))
    assert snr_db(reverberant, seen) == pytest.approx(3.0, abs=0.1)
    assert snr_db(clean / np.max(np.abs(clean)), seen) < 2.0  # the reverberation is there, not only noise


def test_lhotse_path_mixes_noise_and_reverb_with_the_same_keys(clips):
    """data.bucketing=true (NeMo's Lhotse path): the same keys become lhotse's noise mixing (at the
    configured SNR, measured on the batch the dataloader gives) and its RIR reverberation."""
    cfg = data_cfg(
        noise_manifest=clips["noise"], noise_prob=1.0, noise_snr_db=[4.0, 4.0], bucketing=True, batch_duration=10,
        num_buckets=1, rir_manifest=clips["rir"], rir_prob=0.3, shuffle_buffer_size=10,
    )  # fmt: skip
    model = tiny_char_model(ENGLISH)
    config = dataset_config(model, clips["clean_manifest"], cfg, train=True)
    assert config.noise_path == clips["noise"] and list(config.noise_snr) == [4.0, 4.0]
    assert config.rir_enabled and config.rir_path.endswith(".lhotse_recordings.jsonl.gz") and config.rir_prob == 0.3
    from lhotse import RecordingSet

    assert len(RecordingSet.from_file(config.rir_path)) == 1
    # noise alone, measured on what the Lhotse dataloader yields
    cfg.rir_manifest = None
    model.setup_training_data(dataset_config(model, clips["clean_manifest"], cfg, train=True))
    signal, length, *_ = next(iter(model._train_dl))
    seen = signal[0, : int(length[0])].numpy().astype(np.float64)
    clean = soundfile.read(clips["clean"], dtype="float64")[0]
    assert snr_db(clean, seen) == pytest.approx(4.0, abs=0.2)
