"""``export --average N [--average-from last]``: the mean weights of a run's N best (or N latest) checkpoints as
a .nemo stock NeMo restores."""

from __future__ import annotations

import torch

from asr_transfer import cli
from asr_transfer.training.average import run_checkpoints, select_checkpoints
from asr_transfer.training.config import load_config
from asr_transfer.training.finetune import finetune
from tests.conftest import CONF


def test_average_of_the_best_and_of_the_last_checkpoints_are_their_means(tmp_path, german, tiny_base, capsys):
    """Three checkpoints, all kept; the best two by the monitor and the last two by step are different pairs,
    and each export is the mean of its own pair. The dev scores of a few steps from random weights are noise
    (val_wer is 1.0 at every step, and ties go to the later step; val_cer and val_loss changed order between
    sessions, whose synthetic corpora differ slightly), so the monitor is one whose order is known: global_step, which
    NeMo's CTC models log at every validation, with mode=min. The best two are then steps 1 and 2, the last
    two steps 2 and 3; the selection reads only the recorded score and mode, whatever the metric."""
    cfg = load_config(
        str(CONF / "tiny_quartznet_char.yaml"),
        [
            f"vocab.dir={german['char']}",
            f"data.train_manifest={german['train']}",
            f"data.dev_manifest={german['dev']}",
            f"exp_manager.exp_dir={tmp_path / 'exp'}",
            f"init.nemo={tiny_base}",
            "trainer.enable_progress_bar=false",
            "data.batch_size=4",
            "trainer.max_steps=3",
            "trainer.val_check_interval=1",
            "exp_manager.checkpoint_callback_params.save_top_k=-1",
            "exp_manager.checkpoint_callback_params.monitor=global_step",
            "exp_manager.checkpoint_callback_params.mode=min",
        ],
    )
    run = finetune(cfg)
    kept = run_checkpoints(run)
    assert [c.step for c in kept] == [1, 2, 3] and {(c.monitor, c.mode) for c in kept} == {("global_step", "min")}
    assert [c.score for c in kept] == [1.0, 2.0, 3.0], kept  # the global_step each recorded
    best = select_checkpoints(run, 2)
    last = select_checkpoints(run, 2, "last")
    assert [c.step for c in best] == [1, 2] and [c.step for c in last] == [2, 3]

    from nemo.collections.asr.models import ASRModel

    def exported(name, *options):
        out = tmp_path / name
        assert cli.main(["export", "--run", str(run), "--average", "2", *options, "--out", str(out)]) == 0
        assert "mean of 2 checkpoints" in capsys.readouterr().out
        return ASRModel.restore_from(str(out), map_location="cpu").state_dict()

    def mean_of(chosen):
        states = [torch.load(str(c.path), map_location="cpu", weights_only=False)["state_dict"] for c in chosen]
        return {key: (states[0][key] + states[1][key]) / 2 for key in states[0] if states[0][key].is_floating_point()}

    by_score, by_step = exported("best.nemo"), exported("last.nemo", "--average-from", "last")
    for restored, chosen, other in ((by_score, best, last), (by_step, last, best)):
        expected, not_expected = mean_of(chosen), mean_of(other)
        for key, value in restored.items():
            if value.is_floating_point():
                torch.testing.assert_close(value, expected[key], rtol=1e-6, atol=1e-7)
        weight = "encoder.encoder.0.mconv.0.conv.weight"
        assert not torch.allclose(restored[weight], not_expected[weight]), "the other pair's mean"
    state = torch.load(str(last[-1].path), map_location="cpu", weights_only=False)["state_dict"]
    integers = [key for key, value in by_step.items() if not value.is_floating_point()]
    assert integers and all(torch.equal(by_step[key], state[key]) for key in integers)  # the newest checkpoint's

    # more than the run kept: one error line naming the key to set
    assert cli.main(["export", "--run", str(run), "--average", "4", "--out", str(tmp_path / "x.nemo")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "save_top_k=4" in error
