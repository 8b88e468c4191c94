"""The one fine-tuning run layer (asr_transfer/training/run.py): the standard overrides are built in one
place, and a user error in a run comes back as the exception naming the caller's own option."""

from __future__ import annotations

import pytest

from asr_transfer import cli
from asr_transfer.errors import UserError
from asr_transfer.training.run import RunPlan, load_plan, plan_overrides, run_finetune
from tests.conftest import CONF


def test_a_plan_is_the_standard_overrides_with_the_callers_last():
    plan = RunPlan(
        config=str(CONF / "tiny_quartznet_char.yaml"),
        exp_dir="exp/runs",
        name="transfer",
        version="s1",
        steps=10,
        val_every=25,
        seed=3,
        progress_bar=False,
        overrides=("trainer.max_steps=12", "vocab.dir=tok"),
    )
    assert plan_overrides(plan) == [
        "exp_manager.exp_dir=exp/runs",
        "exp_manager.name=transfer",
        "exp_manager.version=s1",
        "trainer.max_steps=10",
        "seed=3",
        "trainer.val_check_interval=10",  # at most the step budget: a short run validates once
        "trainer.enable_progress_bar=false",
        "trainer.max_steps=12",
        "vocab.dir=tok",
    ]
    cfg = load_plan(plan)
    assert cfg.trainer.max_steps == 12 and cfg.seed == 3 and cfg.exp_manager.version == "s1"


def test_the_finetune_run_options_are_the_same_plan(capsys):
    code = cli.main(
        ["finetune", "--config", str(CONF / "domain.yaml"), "--exp-dir", "x", "--name", "arm", "--steps", "7"]
        + ["--val-every", "50", "--print", "config"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "max_steps: 7" in out and "val_check_interval: 7" in out and "exp_dir: x" in out and "name: arm" in out


def test_a_user_error_in_an_isolated_run_names_the_callers_option(tmp_path):
    """The study's error about its base names base.nemo=, with no log scraping: the run's process sends
    the error back; its log holds the same line."""
    plan = RunPlan(
        config=str(CONF / "tiny_quartznet_char.yaml"),
        exp_dir=str(tmp_path / "runs"),
        overrides=("init.nemo=" + str(tmp_path / "missing.nemo"), "vocab.dir=x", "data.train_manifest=t.json")
        + ("data.dev_manifest=d.json",),
        option_names={"init.nemo": "base.nemo="},
    )
    log = tmp_path / "logs" / "run.log"
    with pytest.raises(UserError, match=r"base.nemo=\S*missing.nemo does not exist") as caught:
        run_finetune(plan, log)
    assert str(log) in str(caught.value)
    assert "error: base.nemo=" in log.read_text(encoding="utf-8")
    assert not (tmp_path / "runs").exists()


def test_a_recipe_names_its_own_option_through_finetune(tmp_path, capsys):
    code = cli.main(
        ["finetune", "--config", str(CONF / "tiny_quartznet_char.yaml"), "--option-name", "init.nemo=--base"]
        + [f"init.nemo={tmp_path / 'gone.nemo'}", "vocab.dir=x", "data.train_manifest=t", "data.dev_manifest=d"]
    )
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith("error: --base ") and "gone.nemo" in err[0], err


def test_patience_ends_a_run_after_validations_without_a_new_best(tmp_path, german, capsys):
    """--patience N is NeMo's early stopping on the checkpoints' monitor, min_delta 0: a scratch model whose
    dev WER sits at 1.0 has no new best after its first validation, so patience 1 ends it at the second."""
    from asr_transfer.curves import read_points, settled

    code = cli.main(
        ["finetune", "--config", str(CONF / "tiny_quartznet_char.yaml"), "init.scratch=true"]
        + [f"vocab.dir={german['char']}", f"data.train_manifest={german['train']}"]
        + [f"data.dev_manifest={german['dev']}"]
        + ["data.batch_size=4", "--exp-dir", str(tmp_path), "--name", "es", "--steps", "60", "--val-every", "2"]
        + ["--patience", "1", "--no-progress-bar"]
    )
    out = capsys.readouterr()
    curve = read_points(tmp_path / "es" / "v1")
    assert code == 0
    assert curve[-1]["step"] < 60 and settled(curve, "wer", 1), curve
    stop_line = f"stopped at step {curve[-1]['step']}/60: no new best dev WER in the last 1 validation(s)"
    assert stop_line in out.out, out.out
    assert (tmp_path / "es" / "v1" / "checkpoints" / "es.nemo").is_file()


def test_patience_below_one_is_refused(capsys):
    code = cli.main(["finetune", "--config", str(CONF / "tiny_quartznet_char.yaml"), "--patience", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["error: patience 0 is not a number of validations; give 1 or more"], err
