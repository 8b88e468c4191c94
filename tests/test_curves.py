"""The report toolkit (asr_transfer.curves) and the recipe folder names the reports ask layout for."""

from __future__ import annotations

import pytest

from asr_transfer import cli, layout
from asr_transfer.curves import (
    Line,
    Panel,
    best_point,
    first_reaching,
    mean_curve,
    plot_curves,
    read_points,
    settled,
    speed_up,
)
from asr_transfer.errors import InputError


def points(*wers, cer=None):
    return [{"step": 10 * (i + 1), "seconds": float(i), "dev_wer": w, "dev_cer": cer} for i, w in enumerate(wers)]


def test_speed_up_is_reference_steps_over_arm_steps():
    assert speed_up(300, 100).ratio == 3.0 and not speed_up(300, 100).lower_bound
    # The reference never reached the target: its whole budget stands in, and the ratio is a lower bound.
    assert speed_up(None, 50, reference_budget=200) == speed_up(200, 50, reference_settled=False)
    assert speed_up(None, 50, reference_budget=200).ratio == 4.0
    assert speed_up(300, None).ratio is None and speed_up(None, None, reference_budget=200).ratio is None


def test_curve_questions():
    curve = points(0.9, 0.6, 0.5, 0.55, 0.52, 0.51)
    assert first_reaching(curve, "wer", 0.6)["step"] == 20
    assert first_reaching(curve, "cer", 1.0) is None  # no point has a CER
    assert best_point(curve, "wer")["step"] == 30
    assert settled(curve, "wer", patience=3) and not settled(curve, "wer", patience=4)
    steps, means, spread = mean_curve([[(10, 0.4), (20, 0.2)], [(10, 0.6)]])
    assert (steps, means, spread) == ([10], [0.5], [(0.4, 0.6)])
    assert mean_curve([[(10, 0.4), (20, 0.2)], [(10, 0.6)]], every_curve=False)[0] == [10, 20]


def test_read_points_and_plot(tmp_path):
    with pytest.raises(InputError, match="validated at least once"):
        read_points(tmp_path)
    layout.metrics_path(tmp_path).parent.mkdir()
    layout.metrics_path(tmp_path).write_text(
        "step,seconds,val_wer,val_loss,train_loss,val_cer\n5,1.5,0.9,2,2,0.4\n10,3,,,1,\n15,4.5,0.7,1,1,\n"
    )
    found = read_points(tmp_path)
    assert [(p["step"], p["dev_wer"], p["dev_cer"]) for p in found] == [(5, 0.9, 0.4), (15, 0.7, None)]
    png = tmp_path / "curves.png"
    plot_curves(
        png, [Panel([Line("run", [5, 15], [0.9, 0.7])]), Panel([Line("cer", [5], [0.4])], ylabel="dev CER")], (4, 3)
    )
    assert png.stat().st_size > 5000


def test_report_prints_the_recipe_folder_names(tmp_path, capsys):
    assert cli.main(["report", "demo", str(tmp_path), "--print", "eval-transfer-beam"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "eval_transfer_beam")
    assert cli.main(["report", "domain", "out", "--print", "eval-after-original"]) == 0
    assert capsys.readouterr().out.strip() == str(layout.eval_dir("out", "after_original"))
    assert cli.main(["report", "demo", "out", "--print", "plot"]) == 0
    assert capsys.readouterr().out.strip() == str(layout.demo_plot("out"))
    assert cli.main(["report", "demo", "out", "--print", "eval-nothing"]) == 2
    assert "use one of eval-transfer, eval-scratch" in capsys.readouterr().err
    assert cli.main(["report", "demo", "out"]) == 2
    assert "--transfer RUN and --scratch RUN" in capsys.readouterr().err
