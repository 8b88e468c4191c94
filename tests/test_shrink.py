"""asr-transfer shrink: students cut from a teacher, masked losses, step 1, and a two-student run end to end."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from asr_transfer.cli import main as cli_main
from asr_transfer.shrink import losses
from asr_transfer.shrink.students import ShrinkError, derive, kept_layers, layer_list, parameter_count
from asr_transfer.training.models import build_model
from tests.conftest import CONF

SMALL_CONFORMER = [
    "model.encoder.n_layers=4",
    "model.encoder.d_model=32",
    "model.encoder.n_heads=2",
    "model.encoder.subsampling_conv_channels=16",
    "model.decoder.feat_in=32",
]


@pytest.fixture(scope="module")
def tiny_teacher(german, tmp_path_factory) -> str:
    """A 4-layer FastConformer-CTC of width 32 with the German BPE vocabulary, random weights."""
    arch = OmegaConf.load(CONF / "arch" / "tiny_fastconformer_bpe.yaml")
    for override in SMALL_CONFORMER:
        key, value = override.split("=")
        OmegaConf.update(arch, key, int(value))
    torch.manual_seed(0)
    model = build_model(arch.model, OmegaConf.create({"kind": "bpe", "dir": str(german["bpe"])}))
    path = tmp_path_factory.mktemp("teacher") / "teacher.nemo"
    model.save_to(str(path))
    return str(path)


def test_students_have_the_expected_layers_and_parameters(tiny_teacher, tmp_path):
    teacher = derive(tiny_teacher, [0, 1, 2, 3], copy_weights=True)
    layers = layer_list(teacher)
    assert (layers.kind, layers.count) == ("conformer", 4)
    per_layer = sum(p.numel() for p in teacher.encoder.layers[0].parameters())
    assert kept_layers(layers, 2, spread=True) == [1, 3]  # every 2nd teacher layer
    assert kept_layers(layers, 2, spread=False) == [0, 1]
    student = derive(tiny_teacher, [1, 3], copy_weights=True)
    assert len(student.encoder.layers) == 2 and student.cfg.encoder.n_layers == 2
    assert parameter_count(student) == parameter_count(teacher) - 2 * per_layer
    torch.testing.assert_close(student.encoder.layers[1].state_dict(), teacher.encoder.layers[3].state_dict())
    path = tmp_path / "student_2.nemo"
    student.save_to(str(path))
    one = derive(str(path), kept_layers(layer_list(student), 1, spread=False), copy_weights=True)
    assert len(one.encoder.layers) == 1
    assert parameter_count(one) == parameter_count(teacher) - 3 * per_layer
    torch.testing.assert_close(one.encoder.layers[0].state_dict(), teacher.encoder.layers[1].state_dict())
    with pytest.raises(ShrinkError, match="not smaller than the teacher"):
        kept_layers(layers, 4, spread=False)


def test_quartznet_students_drop_only_blocks_of_equal_widths(tiny_base):
    teacher = derive(tiny_base, list(range(6)), copy_weights=True)
    layers = layer_list(teacher)
    assert layers.kind == "jasper" and layers.removable == (1,)  # 128 -> 128; every later block changes width
    student = derive(tiny_base, kept_layers(layers, 5, spread=False), copy_weights=False)
    assert len(student.encoder.encoder) == 5
    signal = torch.randn(1, 16000)
    with torch.no_grad():
        assert (
            student(input_signal=signal, input_signal_length=torch.tensor([16000]))[0].shape[-1]
            == len(student.decoder.vocabulary) + 1
        )
    with pytest.raises(ShrinkError, match="too small"):
        kept_layers(layers, 4, spread=False)


def test_masked_losses_ignore_padded_frames():
    torch.manual_seed(0)
    lengths = torch.tensor([7, 4, 9])
    student = {"encoded": torch.randn(3, 8, 9), "log_probs": torch.randn(3, 9, 5).log_softmax(-1)}
    teacher = {"encoded": torch.randn(3, 8, 9), "log_probs": torch.randn(3, 9, 5).log_softmax(-1)}

    def padded(tensors: dict, extra: int) -> dict:
        # garbage beyond every utterance's length, and 6 more frames of it
        out = {}
        for key, value in tensors.items():
            time_axis = -1 if key == "encoded" else 1
            junk = 100 * torch.randn_like(value.narrow(time_axis, 0, extra))
            grown = torch.cat([value, junk], dim=time_axis)
            mask = losses.frame_mask(lengths, grown.shape[time_axis])
            mask = mask[:, None, :] if key == "encoded" else mask[:, :, None]
            out[key] = torch.where(mask, grown, 100 * torch.randn_like(grown))
        return out

    for kind in losses.LOSSES:
        clean = losses.representation_loss(kind, student, teacher, lengths)["loss"]
        noisy = losses.representation_loss(kind, padded(student, 6), padded(teacher, 6), lengths)["loss"]
        torch.testing.assert_close(clean, noisy)
    # the masked mean is the frame-weighted mean of the utterances' unpadded losses
    pairs = zip(student["log_probs"], teacher["log_probs"], lengths.tolist(), strict=True)
    unpadded = [losses.masked_mse(s[None, :n], t[None, :n], torch.tensor([n])) * n for s, t, n in pairs]
    weighted = sum(unpadded) / lengths.sum()
    torch.testing.assert_close(losses.masked_mse(student["log_probs"], teacher["log_probs"], lengths), weighted)


def test_step1_lowers_the_representation_loss(tiny_teacher, german, tmp_path):
    from asr_transfer.inference.model import load_model
    from asr_transfer.shrink.encrl import Step1Config, learn_representations

    teacher = load_model(tiny_teacher, "cpu")
    torch.manual_seed(0)
    student = derive(tiny_teacher, [0, 1], copy_weights=False)
    # step 1 needs no transcripts: an audio manifest without text (paths made absolute)
    audio = tmp_path / "audio.json"
    base = Path(german["train"]).parent
    with open(german["train"]) as source, open(audio, "w") as target:
        for line in source:
            entry = json.loads(line)
            target.write(
                json.dumps({"audio_filepath": str(base / entry["audio_filepath"]), "duration": entry["duration"]})
                + "\n"
            )
    summary = learn_representations(
        teacher,
        student,
        str(audio),
        german["dev"],
        tmp_path,
        Step1Config(steps=30, batch_size=8, lr=3e-3),
        progress=False,
    )
    assert summary["steps"] == 30
    assert summary["dev_loss_after"] < 0.8 * summary["dev_loss_before"], summary
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert len(rows) == 30 and {"clip", "mse", "loss", "seconds"} <= set(rows[0])
    # a rerun finds the finished checkpoint and trains nothing more
    again = learn_representations(
        teacher,
        student,
        str(audio),
        german["dev"],
        tmp_path,
        Step1Config(steps=30, batch_size=8, lr=3e-3),
        progress=False,
    )
    assert again["steps"] == 30 and again["seconds"] == summary["seconds"]


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asr_transfer.cli", *argv], capture_output=True, text=True)


def test_shrink_errors_are_one_line(tiny_teacher, tiny_base, german, tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("")
    common = ["--train", german["train"], "--dev", german["dev"], "--config", str(CONF / "tiny_fastconformer_bpe.yaml")]
    cases = {
        "holds no utterances": ["--teacher", tiny_teacher, "--students", "2", "--audio", str(empty)],
        "not smaller than the teacher": ["--teacher", tiny_teacher, "--students", "4,2", "--audio", german["train"]],
        "too small for this teacher": ["--teacher", tiny_base, "--students", "3", "--audio", german["train"]],
    }
    for message, args in cases.items():
        finished = run_cli("shrink", *args, *common, str(tmp_path / "out"))
        assert finished.returncode == 2, finished.stderr
        errors = [line for line in finished.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0] and "Traceback" not in finished.stderr, finished.stderr
    assert not (tmp_path / "out" / "results").exists()


def test_two_student_shrink_end_to_end(tiny_teacher, german, tmp_path):
    out = tmp_path / "shrink"
    argv = [
        "shrink", "--teacher", tiny_teacher, "--students", "2,1", "--audio", german["train"],
        "--train", german["train"], "--dev", german["dev"], "--test", german["dev"], "--lang", "de",
        "--config", str(CONF / "tiny_fastconformer_bpe.yaml"), "--rl-steps", "6", "--ctc-steps", "6",
        "--val-every", "3", "--batch-size", "8", "--baselines", "scratch,kd", str(out),
    ]  # fmt: skip
    assert cli_main(argv) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    arms = {(row["arm"], row["layers"]) for row in rows}
    assert arms == {("teacher", "4")} | {
        (arm, size) for arm in ("twostep_onerun_random_clip-mse", "scratch", "kd") for size in ("2", "1")
    }
    by_arm = {(row["arm"], row["layers"]): row for row in rows}
    assert by_arm[("scratch", "2")]["step2_steps"] == "12"  # step 1's and step 2's steps
    assert by_arm[("twostep_onerun_random_clip-mse", "1")]["step1_steps"] == "6"
    assert int(by_arm[("kd", "1")]["parameters"]) < int(by_arm[("kd", "2")]["parameters"])
    # the KD teacher is held outside the module tree: never saved with the student
    assert by_arm[("kd", "1")]["parameters"] == by_arm[("scratch", "1")]["parameters"]
    for name in ("RESULTS.md", "frontier.png", "dev_curves.png"):
        assert (out / name).stat().st_size > 0
    report = (out / "RESULTS.md").read_text()
    assert "two-step (one step-1 run, random init, clip+mse)" in report and "asr-transfer shrink --teacher" in report
    # stock NeMo, in a process that never imports asr_transfer, restores and transcribes each student
    check = (
        "import sys, json\n"
        "from nemo.collections.asr.models import ASRModel\n"
        "for size in (2, 1):\n"
        f"    m = ASRModel.restore_from('{out}/student_%d.nemo' % size, map_location='cpu')\n"
        "    assert type(m).__name__ == 'EncDecCTCModelBPE' and len(m.encoder.layers) == size\n"
        f"    audio = json.loads(open('{german['dev']}').readline())['audio_filepath']\n"
        "    print(size, repr(m.transcribe([audio], verbose=False)[0].text))\n"
        "assert 'asr_transfer' not in sys.modules\n"
    )
    finished = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    # a rerun finds everything done, and the command is recorded once
    assert cli_main(argv) == 0
    assert len((out / "commands.txt").read_text().splitlines()) == 1
    assert json.loads((out / "results" / "kd_L1_s0.json").read_text())["arm"] == "kd"
    assert len(list(Path(out / "logs").glob("*.log"))) == 6


@pytest.mark.slow
def test_shrink_variants_teacher_init_separately_mse_scratch3x_two_seeds(tiny_teacher, german, tmp_path):
    """The options recipes/shrink/run.sh's stage 3 uses, run once each: --init teacher, --separately,
    a --loss other than the default, the scratch-3x baseline and more than one seed (one student size,
    to keep the suite's time: --separately's own step-1 folder per size is still what is checked)."""
    out = tmp_path / "shrink"
    argv = [
        "shrink", "--teacher", tiny_teacher, "--students", "1", "--audio", german["train"],
        "--train", german["train"], "--dev", german["dev"], "--lang", "de",
        "--config", str(CONF / "tiny_fastconformer_bpe.yaml"), "--rl-steps", "3", "--ctc-steps", "3",
        "--val-every", "3", "--batch-size", "8", "--init", "teacher", "--separately", "--loss", "mse",
        "--baselines", "scratch-3x", "--seeds", "0,1", str(out),
    ]  # fmt: skip
    assert cli_main(argv) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    runs = {(row["arm"], row["layers"], row["seed"]) for row in rows if row["arm"] != "teacher"}
    assert runs == {(arm, "1", seed) for arm in ("twostep_separate_teacher_mse", "scratch-3x") for seed in ("0", "1")}
    by_run = {(row["arm"], row["layers"], row["seed"]): row for row in rows}
    assert by_run[("scratch-3x", "1", "1")]["step2_steps"] == "9"  # 3x step 2's steps
    assert by_run[("twostep_separate_teacher_mse", "1", "0")]["step1_steps"] == "3"
    assert "±" in (out / "RESULTS.md").read_text()  # a mean and spread over the two seeds
    for seed in ("0", "1"):  # step 1 trained for this student on its own
        assert (out / "step1" / f"twostep_separate_teacher_mse_s{seed}" / "L1").is_dir()
