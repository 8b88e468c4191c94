"""The transfer study end to end on a tiny grid, and weight introspection on models with one known change."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONF, REPO, char_vocab
from omegaconf import OmegaConf

from asr_transfer.analysis import introspect
from asr_transfer.study import grid
from asr_transfer.study.config import StudyConfig, load_study_config
from asr_transfer.training.config import ConfigError, load_config
from asr_transfer.training.finetune import scratch_model_config
from asr_transfer.training.models import build_model

SHIPPED_BASE = REPO / "recipes" / "en_base" / "model" / "en_tiny_quartznet_char.nemo"


def tiny_study(tmp_path: Path, german: dict) -> Path:
    path = tmp_path / "tiny_study.yaml"
    config = {
        "name": "tiny",
        "lang": "de",
        "out_dir": str(tmp_path / "study"),
        "data": {"train_manifest": german["train"], "dev_manifest": german["dev"], "test_manifest": german["dev"]},
        "vocab": {"kind": "char", "dir": str(german["char"])},
        "finetune_config": str(CONF / "tiny_quartznet_char.yaml"),
        "base": {"nemo": str(SHIPPED_BASE)},
        "steps": 4,
        "val_every": 2,
        "target": 1.0,
        "budgets": [0.5, 1.0],
        "overrides": ["data.batch_size=4"],
        "arms": {"scratch": {"init": "scratch"}, "transfer": {"init": "base"}},
        "comparisons": [{"name": "transfer", "arm": "transfer", "against": "scratch"}],
    }
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(config)), encoding="utf-8")
    return path


@pytest.mark.slow
def test_tiny_study_writes_every_output_with_a_number_per_arm_and_budget(tmp_path, german):
    config = tiny_study(tmp_path, german)
    published = tmp_path / "published"
    recipe = [str(REPO / "recipes" / "study" / "run.sh"), "--config", str(config), "--publish", str(published)]
    done = subprocess.run(
        ["bash", *recipe, "--overrides", "patience=5"],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Stage 0: study" in done.stdout and "Stage 1: publish" in done.stdout
    out = tmp_path / "study"
    for name in ("RESULTS.md", "results.csv", "curves.csv", "results.json", "wer_vs_steps.png", "inspect/transfer.png"):
        assert (published / name).read_bytes() == (out / name).read_bytes(), name
    # --overrides reached every run: the study's patience is each run's early stopping.
    saved_configs = sorted(out.glob("runs/**/finetune_config.yaml"))
    assert len(saved_configs) == 4, saved_configs
    for saved in saved_configs:
        assert OmegaConf.load(saved).exp_manager.early_stopping_callback_params.patience == 5, saved
    for name in ("RESULTS.md", "results.csv", "curves.csv", "results.json", "wer_vs_steps.png", "wer_vs_data.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "inspect" / "transfer.png").exists() and (out / "inspect" / "transfer.csv").exists()
    with open(out / "results.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    cells = {(float(row["budget"]), row["arm"]) for row in rows}
    assert cells == {(0.5, "scratch"), (0.5, "transfer"), (1.0, "scratch"), (1.0, "transfer")}
    for row in rows:
        assert math.isfinite(float(row["test_wer"])) and math.isfinite(float(row["best_dev_wer"]))
        assert math.isfinite(float(row["best_dev_cer"]))
        assert int(row["steps_to_target"]) == 2  # target 1.0 is reached at the first validation
    with open(out / "curves.csv", encoding="utf-8") as handle:
        curve_rows = list(csv.DictReader(handle))
    assert len(curve_rows) == 2 * len(rows) and all(float(row["dev_cer"]) >= 0 for row in curve_rows)
    half = json.loads((out / "results.json").read_text())["budgets"]["p050"]
    assert 0 < half["utterances"] < sum(1 for _ in open(german["train"], encoding="utf-8"))
    results = (out / "RESULTS.md").read_text()
    assert "| transfer |" in results and "| scratch |" in results and "Which layers moved" in results
    assert "## Findings" in results

    # A rerun skips every finished run.
    runs = sorted(out.glob("runs/*/*/s0/study_result.json"))
    stamps = [path.stat().st_mtime_ns for path in runs]
    assert grid.main(["--config", str(config)]) == 0
    assert [path.stat().st_mtime_ns for path in runs] == stamps


def test_study_config_errors_say_what_to_fix(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\narms: {transfer: {init: base}}\ndata: {synth: {clips: 10}}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="base.nemo or base.pretrained"):
        load_study_config(str(path))
    path.write_text("name: bad\narms: {scratch: {init: scratch}}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="data.synth"):
        load_study_config(str(path))
    # The schema names an unknown key and a value of the wrong type.
    path.write_text("name: bad\nstepz: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="stepz"):
        load_study_config(str(path))
    path.write_text("name: bad\nsteps: many\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="steps"):
        load_study_config(str(path))


def test_study_config_refuses_the_old_target_wer_key_naming_target(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("name: old\ntarget_wer: 0.5\narms: {scratch: {init: scratch}}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="target_wer was renamed target .*rename the key to target"):
        load_study_config(str(path))
    path.write_text("name: old\narms: {scratch: {init: scratch}}\ndata: {synth: {clips: 10}}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="rename the key to target"):
        load_study_config(str(path), ["target_wer=0.5"])
    assert load_study_config(str(path), ["target=0.5"]).target == 0.5


def test_study_report_speaks_the_language_metric(tmp_path):
    """Cantonese is judged on CER: the target, the steps to it, the budget table and the findings are CER."""
    from asr_transfer.study.report import write_report

    cfg = OmegaConf.merge(
        OmegaConf.structured(StudyConfig),
        {"name": "yue", "lang": "yue", "finetune_config": "tiny.yaml", "budgets": [0.5, 1.0], "target": 0.5,
         "arms": {"scratch": {"init": "scratch"}, "transfer": {"init": "base"}},
         "comparisons": [{"name": "transfer", "arm": "transfer", "against": "scratch"}]},
    )  # fmt: skip
    results = [
        _fake_run(budget, arm, 0, wer) for budget in (0.5, 1.0) for arm, wer in (("scratch", 0.9), ("transfer", 0.6))
    ]
    for result in results:
        for point in result.curve:
            point["dev_cer"] = point["dev_wer"] / 3
    budgets = {b: {"manifest": "unused", "hours": b / 10, "utterances": int(100 * b)} for b in (0.5, 1.0)}
    write_report(cfg, tmp_path, results, budgets, {"wer": 0.95, "cer": 0.7}, {}, "cmd")
    report = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert "Target dev CER for the speed columns: 0.5." in report and "| steps to dev CER 0.5 |" in report
    assert "## Data budgets (test CER)" in report and "Steps to dev CER 0.5" in report
    # test CER is test WER / 3 in _fake_run: transfer 0.200 against scratch 0.300, the base's CER 0.700.
    assert "test CER 50%: 0.200 vs 0.300; 100%: 0.200 vs 0.300." in report
    assert "(test CER 0.700): fine-tuning beats it in 2 of 2" in report


def test_study_config_paths_are_relative_to_the_file(tmp_path):
    """recipes/study/run.sh works from any directory: input paths in a study file are the file's."""
    cfg = load_study_config(str(REPO / "recipes" / "study" / "conf" / "de_synthetic.yaml"))
    assert Path(cfg.finetune_config) == CONF / "tiny_quartznet_char.yaml" and Path(cfg.base.nemo) == SHIPPED_BASE
    assert cfg.out_dir == "exp/study/de_synthetic"


def test_grid_runs_every_arm_at_full_budget_and_budget_arms_at_the_others():
    cfg = OmegaConf.merge(
        OmegaConf.structured(StudyConfig),
        {
            "budgets": [0.25, 1.0],
            "budget_arms": ["scratch"],
            "seeds": [0, 1],
            "arms": {"scratch": {"init": "scratch"}, "transfer": {}, "freeze_2": {"init": "base"}},
        },
    )
    runs = grid.grid(cfg)
    assert (0.25, "scratch", 1) in runs and (0.25, "transfer", 0) not in runs
    assert {arm for budget, arm, _ in runs if budget == 1.0} == {"scratch", "transfer", "freeze_2"}
    assert len(runs) == 2 * (1 + 3)


def _fake_run(budget: float, arm: str, seed: int, test_wer: float) -> grid.RunResult:
    curve = [{"step": step, "seconds": step / 10, "dev_wer": test_wer + 0.5 / step} for step in (25, 50)]
    return grid.RunResult(
        budget=budget, arm=arm, seed=seed, train_hours=budget / 10, train_utterances=int(100 * budget), steps=50,
        test_wer=test_wer, test_cer=test_wer / 3, best_dev_wer=test_wer + 0.01, final_dev_wer=test_wer + 0.01,
        steps_to_target=25, seconds_to_target=2.5, train_seconds=5.0, model="unused.nemo", curve=curve,
    )  # fmt: skip


def test_report_gives_mean_and_spread_over_seeds(tmp_path):
    from asr_transfer.study.report import write_report

    cfg = OmegaConf.merge(
        OmegaConf.structured(StudyConfig),
        {"name": "seeds", "seeds": [0, 1], "finetune_config": "tiny.yaml", "budgets": [0.5, 1.0], "target": 0.9,
         "arms": {"scratch": {"init": "scratch"}, "transfer": {"init": "base"}}},
    )  # fmt: skip
    wers = {("scratch", 0): 0.8, ("scratch", 1): 0.9, ("transfer", 0): 0.4, ("transfer", 1): 0.6}
    results = [_fake_run(budget, arm, seed, wer) for budget in (0.5, 1.0) for (arm, seed), wer in wers.items()]
    budgets = {b: {"manifest": "unused", "hours": b / 10, "utterances": int(100 * b)} for b in (0.5, 1.0)}
    base_on_test = {"wer": 0.55, "cer": 0.2}
    write_report(cfg, tmp_path, results, budgets, base_on_test, {}, "asr-transfer study --config seeds.yaml")
    report = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    # transfer: mean 0.5, sample sd of (0.4, 0.6) = 0.141; scratch: 0.85 and 0.071.
    assert "| transfer | 0.500 ± 0.141 |" in report and "| scratch | 0.850 ± 0.071 |" in report
    assert "| 50% (50 utt., 3.0 min) | 0.850 ± 0.071 | 0.500 ± 0.141 |" in report
    assert "sample standard deviation" in report
    assert "(test WER 0.550): fine-tuning beats it in 2 of 2 (arm, budget) cells." in report
    assert (tmp_path / "wer_vs_steps.png").stat().st_size > 0 and (tmp_path / "wer_vs_data.png").stat().st_size > 0


def _tiny_model(tmp_path, labels):
    cfg = load_config(str(CONF / "tiny_quartznet_char.yaml"), ["vocab.dir=unused"])
    torch.manual_seed(0)
    return build_model(scratch_model_config(cfg), char_vocab(tmp_path, labels, name="v" + str(len(labels))))


def test_inspect_finds_the_one_changed_layer(tmp_path):
    labels = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]
    base = _tiny_model(tmp_path, labels)
    base_path, tuned_path = tmp_path / "base.nemo", tmp_path / "tuned.nemo"
    base.save_to(str(base_path))
    with torch.no_grad():
        layer = base.encoder.encoder[3].mconv[1].conv
        layer.weight.mul_(1.5)  # relative change exactly 0.5, direction unchanged (cosine 1)
    base.save_to(str(tuned_path))

    changes = introspect.inspect_files(str(base_path), str(tuned_path))
    assert not any(change.layer.startswith("preprocessor") for change in changes)
    moved = [change for change in changes if change.relative_change > 1e-6]
    assert [change.layer for change in moved] == ["encoder.encoder.3.mconv.1.conv"]
    assert moved[0].relative_change == pytest.approx(0.5, rel=1e-5)
    assert moved[0].cosine == pytest.approx(1.0, abs=1e-6)
    assert all(change.cosine == pytest.approx(1.0, abs=1e-6) for change in changes)
    assert "enc.3" in introspect.describe(changes)

    plot, rows = tmp_path / "inspect.png", tmp_path / "inspect.csv"
    assert (
        introspect.main(["--base", str(base_path), "--tuned", str(tuned_path), "--plot", str(plot), "--csv", str(rows)])
        == 0
    )
    assert plot.stat().st_size > 10_000
    assert len(list(csv.DictReader(open(rows, encoding="utf-8")))) == len(changes)


def test_inspect_compares_shared_rows_after_a_vocabulary_swap(tmp_path):
    english = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]
    base = _tiny_model(tmp_path, english)
    german = [" ", "'", *"abcdefghijklmnopqrstuvwxyz", "ä", "ö", "ü", "ß"]
    tuned = _tiny_model(tmp_path, english)
    tuned.load_state_dict(base.state_dict())
    from asr_transfer.training.models import swap_vocabulary

    tuned, shared = swap_vocabulary(tuned, char_vocab(tmp_path, german, name="de"))
    assert shared == len(english)
    decoder = [change for change in introspect.layer_changes(base, tuned) if change.layer.startswith("decoder")]
    assert decoder[0].relative_change == pytest.approx(0.0, abs=1e-6)  # shared rows were copied, untouched
    assert "28 shared tokens" in decoder[0].note


def write_two_arm_study(folder, lang, scratch_curve, transfer_curve):
    """A finished two-arm study's files, as asr-transfer study writes them; with ``scratch_curve`` None, a
    base-size study's (a transfer arm only)."""
    folder.mkdir(parents=True)
    base = folder.parent / f"{folder.name}_base.nemo"
    (folder.parent / f"{folder.name}_base.provenance.json").write_text(
        json.dumps({"parameters": len(folder.name) * 10**5})
    )
    (folder / "study_config.yaml").write_text(f"lang: {lang}\ndescription: a test study\nbase: {{nemo: {base}}}\n")
    runs = [
        {"budget": 1.0, "arm": arm, "seed": 0, "test_wer": wer, "test_cer": wer / 2, "steps": 500}
        for arm, wer in (("scratch", 0.9), ("transfer", 0.5))
        if arm == "transfer" or scratch_curve is not None
    ]
    (folder / "results.json").write_text(
        json.dumps({"name": folder.name, "command": "asr-transfer study", "runs": runs})
    )
    lines = ["budget,arm,seed,step,seconds,dev_wer,dev_cer"]
    for arm, curve in (("scratch", scratch_curve or []), ("transfer", transfer_curve)):
        lines += [f"1.0,{arm},0,{step},{step},{value},{value / 2}" for step, value in curve]
    (folder / "curves.csv").write_text("\n".join(lines) + "\n")


def test_languages_report_measures_a_speed_up_only_after_scratch_stops_improving(tmp_path):
    from asr_transfer.study.languages import write_report

    plateau = [(100, 0.9), (200, 0.7), (300, 0.75), (400, 0.72), (500, 0.71)]  # best at 200, then 3 worse
    improving = [(100, 0.9), (200, 0.8), (300, 0.7)]
    transfer = [(50, 0.8), (100, 0.6), (150, 0.5)]
    write_two_arm_study(tmp_path / "de_plateau", "de", plateau, transfer)
    write_two_arm_study(tmp_path / "de_improving", "de", improving, transfer)
    write_two_arm_study(tmp_path / "yue_cer", "yue", improving, transfer)
    studies = [str(tmp_path / name) for name in ("de_plateau", "de_improving", "yue_cer")]
    report = open(write_report(studies, str(tmp_path / "out"), "cmd")).read()
    assert (
        "| de_plateau | de_plateau_base | de | WER | 500, fixed | 1 |" in report
        and "0.700 (200 of 500) | 100 | 2.0x (measured) |" in report
    )
    assert (
        "| de_improving | de_improving_base | de | WER | 500, fixed | 1 |" in report
        and "0.700 (300 of 300) | 100 | >= 3.0x (scratch still" in report
    )
    # Cantonese is judged on CER: scratch's best dev CER 0.35 is first reached by transfer at step 100.
    assert "| yue_cer | yue_cer_base | yue | CER | 500, fixed | 1 |" in report
    assert "0.350 (300 of 300) | 100 |" in report
    # Two bases for one language with the same steps: the base-size comparison, smaller base first.
    assert "**de, 500 steps, seed 0**: de_plateau_base (1.00M parameters)" in report
    assert "de_improving_base (1.20M parameters)" in report and "the larger base does not transfer better" in report
    assert (tmp_path / "out" / "dev_curves.png").stat().st_size > 10_000


def test_languages_report_calls_a_same_family_base_size_comparison_clean(tmp_path, tiny_base):
    """Two bases of one family and vocabulary kind (read from their .nemo files), at two sizes: size is the
    difference, and the sentence says so. The larger base's study has a transfer arm only (a base-size
    study): its table row says so, and it is compared on transfer test WER."""
    import shutil

    from asr_transfer.study.languages import write_report

    curve = [(100, 0.9), (200, 0.8)]
    for name, parameters, wer in (("de_small", 4 * 10**5, 0.5), ("de_large", 16 * 10**5, 0.4)):
        write_two_arm_study(tmp_path / name, "de", curve if name == "de_small" else None, curve)
        shutil.copy(tiny_base, tmp_path / f"{name}_base.nemo")
        (tmp_path / f"{name}_base.provenance.json").write_text(json.dumps({"parameters": parameters}))
        results = json.loads((tmp_path / name / "results.json").read_text())
        results["runs"][-1]["test_wer"] = wer
        (tmp_path / name / "results.json").write_text(json.dumps(results))
    report = open(write_report([str(tmp_path / "de_small"), str(tmp_path / "de_large")], str(tmp_path / "out"), "c"))
    text = report.read()
    assert (
        "de_small_base (0.40M parameters): transfer test WER 0.500 against scratch 0.900 (+0.400), best dev WER "
        "0.800 at step 200;" in text
    )
    assert "de_large_base (1.60M parameters): transfer test WER 0.400, best dev WER 0.800 at step 200. Here" in text
    assert "| — | — | no scratch arm (base-size study) |" in text
    assert "the larger base does transfer better (same architecture family and vocabulary (ConvASREncoder/char)" in text
