"""``export --average N``: the mean weights of a run's N best checkpoints as a .nemo stock NeMo restores."""

from __future__ import annotations

import torch

from asr_transfer import cli
from asr_transfer.training.average import select_checkpoints
from asr_transfer.training.config import load_config
from asr_transfer.training.finetune import finetune
from tests.conftest import CONF


def test_average_two_checkpoints_is_their_mean(tmp_path, german, tiny_base, capsys):
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
            "trainer.max_steps=2",
            "trainer.val_check_interval=1",
            "exp_manager.checkpoint_callback_params.save_top_k=2",
        ],
    )
    run = finetune(cfg)
    chosen = select_checkpoints(run, 2)
    assert [checkpoint.step for checkpoint in chosen] == [1, 2] and chosen[0].monitor == "val_wer"
    assert [checkpoint.step for checkpoint in select_checkpoints(run, 2, "last")] == [1, 2], "-last repeats step 2"

    out = tmp_path / "averaged.nemo"
    assert cli.main(["export", "--run", str(run), "--average", "2", "--out", str(out)]) == 0
    assert "mean of 2 checkpoints" in capsys.readouterr().out

    from nemo.collections.asr.models import ASRModel

    restored = ASRModel.restore_from(str(out), map_location="cpu").state_dict()
    states = [torch.load(str(c.path), map_location="cpu", weights_only=False)["state_dict"] for c in chosen]
    weight = "encoder.encoder.0.mconv.0.conv.weight"
    assert not torch.equal(states[0][weight], states[1][weight]), "two steps of training apart"
    for key, value in restored.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (states[0][key] + states[1][key]) / 2, rtol=1e-6, atol=1e-7)
        else:
            assert torch.equal(value, states[1][key])

    # the N latest by step, through the CLI: here the same two checkpoints, so the same weights
    latest = tmp_path / "latest.nemo"
    assert (
        cli.main(["export", "--run", str(run), "--average", "2", "--average-from", "last", "--out", str(latest)]) == 0
    )
    assert "mean of 2 checkpoints" in capsys.readouterr().out
    by_step = ASRModel.restore_from(str(latest), map_location="cpu").state_dict()
    for key, value in restored.items():
        assert torch.equal(value, by_step[key]), key

    # more than the run kept: one error line naming the key to set
    assert cli.main(["export", "--run", str(run), "--average", "3", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "save_top_k=3" in error
