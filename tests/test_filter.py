"""``asr-transfer filter``: every line ends in the kept manifest or the rejects, by the CER threshold, and
planted mismatches (a line given another line's sentence) are the lines it drops; bad input is one error line.

The model is the shipped English base on a small synthetic English corpus it reads (fixture
english_model_and_data). Measured there (seed 11, 28 train lines): CER of a line against its own sentence
0.00-0.18, against another line's sentence 0.29-1.06; the threshold 0.25 lies between, with room on both
sides for espeak-ng's run-to-run differences, and the assertions ask for most, not all.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from asr_transfer.cli import main as cli_main
from asr_transfer.errors import UserError
from asr_transfer.inference.filter import Utterance, output_line, require_writable
from tests.conftest import REPO, read_lines

MAX_CER = 0.25
SHIPPED_BPE = REPO / "recipes" / "en_base" / "model" / "en_tiny_fastconformer_bpe128.nemo"


def plant(train: str, out: Path, every: int = 4) -> tuple[list[str], set[str]]:
    """Every ``every``-th line given the sentence of a line further on with other text, and one line whose
    reference cannot be scored (digits); the raw lines written to ``out`` and the spoiled lines' audio paths."""
    entries = read_lines(Path(train))
    planted = set()
    for index in range(0, len(entries), every):
        donor = next(
            entries[(index + step) % len(entries)]
            for step in range(5, len(entries))
            if entries[(index + step) % len(entries)]["text"] != entries[index]["text"]
        )
        entries[index] = {**entries[index], "text": donor["text"]}
        planted.add(entries[index]["audio_filepath"])
    entries[1] = {**entries[1], "text": "route 66"}
    lines = [json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries]
    out.write_text("".join(lines), encoding="utf-8")
    return lines, planted


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    status = cli_main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_every_line_is_kept_or_rejected_by_its_cer(tmp_path, english_model_and_data, capsys):
    model, train, _ = english_model_and_data
    noisy, out = tmp_path / "noisy.json", tmp_path / "clean.json"
    lines, planted = plant(train, noisy)
    unscorable = json.loads(lines[1])["audio_filepath"]
    status, stdout, stderr = run_cli(
        capsys, "filter", "--model", model, "--manifest", str(noisy), "--out", str(out),
        "--max-cer", str(MAX_CER), "--lang", "en", "--batch-size", "4", "--no-progress",
    )  # fmt: skip
    assert status == 0, stderr
    assert "kept" in stdout

    kept_lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    with open(f"{out}.rejects.tsv", encoding="utf-8", newline="") as handle:
        rejects = list(csv.DictReader(handle, delimiter="\t"))
    summary = json.loads(Path(f"{out}.summary.json").read_text(encoding="utf-8"))

    # every input line in exactly one place; kept lines byte for byte and in input order
    assert all(line in lines for line in kept_lines)
    assert [line for line in lines if line in kept_lines] == kept_lines
    kept_paths = {json.loads(line)["audio_filepath"] for line in kept_lines}
    rejected_paths = [row["audio_filepath"] for row in rejects]
    assert len(rejected_paths) == len(set(rejected_paths)) and not kept_paths & set(rejected_paths)
    assert kept_paths | set(rejected_paths) == {json.loads(line)["audio_filepath"] for line in lines}
    assert summary["utterances_in"] == len(lines) == summary["kept"] + summary["dropped"]
    assert summary["kept"] == len(kept_lines) and summary["dropped"] == len(rejects)

    # rejects carry CER, reference and hypothesis; the threshold decides
    by_path = {row["audio_filepath"]: row for row in rejects}
    assert by_path[unscorable]["reason"] == "reference_digits" and by_path[unscorable]["cer"] == ""
    scored = [row for row in rejects if row["audio_filepath"] != unscorable]
    assert scored and all(row["reason"] == "cer_above_max" for row in scored)
    assert all(float(row["cer"]) > MAX_CER and row["reference"] and row["hypothesis"] for row in scored)
    assert summary["max_cer"] == MAX_CER and summary["dropped_unscorable_reference"] == 1
    assert set(summary["cer_quantiles"]) == {"p10", "p25", "p50", "p75", "p90", "p95", "p99"}
    assert summary["model"] == model and summary["references"]["normalized_by"] == "en"

    good = {json.loads(line)["audio_filepath"] for line in lines} - planted - {unscorable}
    planted_dropped = len(planted & set(rejected_paths)) / len(planted)
    good_kept = len(good & kept_paths) / len(good)
    print(f"planted dropped {planted_dropped:.0%} of {len(planted)}, good kept {good_kept:.0%} of {len(good)}")
    assert planted_dropped >= 0.8 and good_kept >= 0.85


def test_kept_lines_follow_the_threshold_exactly(tmp_path, english_model_and_data):
    """The Python API returns every utterance's CER: kept exactly when CER <= max_cer, at two thresholds."""
    from asr_transfer.inference.filter import filter_manifest
    from asr_transfer.inference.model import load_model

    model_path, train, _ = english_model_and_data
    noisy = tmp_path / "noisy.json"
    plant(train, noisy)
    model = load_model(model_path)
    for max_cer in (0.1, 0.65):
        out = tmp_path / f"clean_{max_cer}.json"
        result = filter_manifest(model_path, str(noisy), str(out), max_cer, lang="en", model=model, progress=False)
        for utterance, kept in zip(result.utterances, result.kept, strict=True):
            assert kept == (utterance.cer is not None and utterance.cer <= max_cer)
        assert len(read_lines(out)) == sum(result.kept) == result.summary["kept"]


def test_relative_audio_paths_still_name_their_files_from_another_folder(tmp_path):
    source, target = tmp_path / "data", tmp_path / "elsewhere" / "out"
    entry = {"audio_filepath": "clips/a.wav", "text": "a"}
    line = json.dumps(entry) + "\n"
    utterance = Utterance(line, entry, "a")
    manifest, beside, out = str(source / "train.json"), str(source / "clean.json"), str(target / "clean.json")
    assert output_line(utterance, manifest, beside) == line  # same folder: the line as written
    moved = json.loads(output_line(utterance, manifest, out))
    assert os.path.normpath(target / moved["audio_filepath"]) == os.path.normpath(source / "clips" / "a.wav")
    absolute = {"audio_filepath": str(source / "a.wav"), "text": "a"}
    assert output_line(Utterance("x\n", absolute, "a"), manifest, out) == "x\n"


def test_a_few_lines_the_model_cannot_write_pass_many_are_refused():
    char_model = SimpleNamespace(decoder=SimpleNamespace(vocabulary=list(" abcdefghijklmnopqrstuvwxyz'")))
    references = ["ein haus"] * 199 + ["schöne grüße"]
    assert require_writable(char_model, references, "m.nemo", "t.json") == 1  # 0.5 % of the lines
    with pytest.raises(UserError) as error:
        require_writable(char_model, ["schöne grüße"] * 3 + ["ein haus"] * 97, "m.nemo", "t.json")
    message = str(error.value)
    assert all(repr(char) in message for char in "öüß") and "fine-tune" in message


def german_text_manifest(train: str, out: Path) -> Path:
    """English audio with German sentences: what a base of the wrong language is asked to filter."""
    entries = read_lines(Path(train))
    out.write_text("".join(json.dumps({**e, "text": "schöne grüße aus köln"}) + "\n" for e in entries), "utf-8")
    return out


@pytest.mark.parametrize("model", ["char", "bpe"])
def test_a_model_that_cannot_write_the_text_is_one_error(model, tmp_path, english_model_and_data, capsys):
    english_char, train, _ = english_model_and_data
    manifest = german_text_manifest(train, tmp_path / "de.json")
    path = english_char if model == "char" else str(SHIPPED_BPE)
    status, _, stderr = run_cli(capsys, "filter", "--model", path, "--manifest", str(manifest), "--out", "x.json")
    assert status == 2 and stderr.count("\n") == 1 and stderr.startswith("error: ")
    assert "'ö'" in stderr and "'ü'" in stderr and "fine-tune it on this language first" in stderr
    assert not (tmp_path / "x.json").exists()


def test_bad_input_is_one_error_line(tmp_path, english_model_and_data, capsys):
    model, train, _ = english_model_and_data
    empty = tmp_path / "empty.json"
    empty.write_text("", encoding="utf-8")
    out = str(tmp_path / "clean.json")
    cases = {
        "does not exist": ["--manifest", str(tmp_path / "missing.json")],
        "holds no utterances": ["--manifest", str(empty)],
        "outside (0, inf)": ["--manifest", train, "--max-cer", "0"],
        "is the input manifest": ["--manifest", train, "--out", train],
    }
    for expected, args in cases.items():
        status, _, stderr = run_cli(capsys, "filter", "--model", model, "--out", out, *args)
        assert status == 2 and expected in stderr and stderr.count("\n") == 1, (expected, stderr)
    for value in ("-1", "inf", "nan"):
        status, _, stderr = run_cli(
            capsys, "filter", "--model", model, "--manifest", train, "--out", out, "--max-cer", value
        )
        assert status == 2 and "outside (0, inf)" in stderr, stderr
    status, _, stderr = run_cli(
        capsys, "filter", "--model", str(tmp_path / "no.nemo"), "--manifest", train, "--out", out
    )
    assert status == 2 and "no.nemo" in stderr
    assert not list(tmp_path.glob("clean.json*")), "a refused run writes nothing"


def test_a_manifest_of_which_nothing_would_be_kept_is_one_error(tmp_path, english_model_and_data, capsys):
    """Every line carries another line's sentence: nothing passes, and an empty training manifest is not written."""
    model, train, _ = english_model_and_data
    entries = read_lines(Path(train))
    shifted = [{**entry, "text": entries[(index + 5) % len(entries)]["text"]} for index, entry in enumerate(entries)]
    manifest = tmp_path / "shifted.json"
    manifest.write_text("".join(json.dumps(entry) + "\n" for entry in shifted), encoding="utf-8")
    status, _, stderr = run_cli(
        capsys, "filter", "--model", model, "--manifest", str(manifest), "--out", str(tmp_path / "c.json"),
        "--max-cer", "0.1", "--lang", "en", "--no-progress",
    )  # fmt: skip
    assert status == 2 and "does not read this data yet" in stderr and stderr.count("\n") == 1, stderr
    assert not list(tmp_path.glob("c.json*"))


def run_recipe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(["bash", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_recipe_filter_cer_option(tmp_path):
    recipe = str(REPO / "recipes" / "de" / "run.sh")
    assert "--filter_cer" in run_recipe(recipe, "--help", cwd=tmp_path).stdout
    for value, expected in (("abc", "is not a number"), ("-1", "is not a number")):
        done = run_recipe(recipe, "cv", "--filter_cer", value, cwd=tmp_path)
        assert done.returncode == 2 and expected in done.stderr and "Stage" not in done.stdout
    done = run_recipe(recipe, "cv", "--filter_cer", "0.65", "--shar", "4", cwd=tmp_path)
    assert done.returncode == 2 and "cannot be combined" in done.stderr


def test_recipe_stages_after_3_use_the_filtered_run(tmp_path):
    """With --filter_cer, stage 4 asks for the best model of <exp_manager.name>_filtered (none exists here)."""
    config = str(REPO / "recipes" / "conf" / "tiny_quartznet_char.yaml")
    done = run_recipe(
        str(REPO / "recipes" / "de" / "run.sh"), "cv", "--out", "exp", "--config", config, "--stage", "4",
        "--stop_stage", "4", "--filter_cer", "0.5", "--overrides", "exp_manager.name=mine", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2 and "finetune/mine_filtered/v1" in done.stderr, done.stderr


@pytest.mark.slow
def test_recipe_with_filter_cer_trains_on_the_filtered_train(tmp_path):
    from asr_transfer.synth.synth_cv import synth_cv
    from tests.test_routes import STEPS, assert_announced_outputs_exist, assert_export_is_best

    synth_cv("de", 24, str(tmp_path / "cv"), seed=5, progress=False)
    base = REPO / "recipes" / "en_base" / "model" / "en_tiny_quartznet_char.nemo"
    config = REPO / "recipes" / "conf" / "tiny_quartznet_char.yaml"
    # a CER bound no line of a 6-step model exceeds: the plumbing is tested, not the model
    done = run_recipe(
        str(REPO / "recipes" / "de" / "run.sh"), "cv", "--out", "exp", "--init_nemo", str(base),
        "--config", str(config), "--overrides", STEPS, "--filter_cer", "50", "--stop_stage", "5", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "filter train" in done.stdout and "on the filtered train" in done.stdout
    assert_announced_outputs_exist(tmp_path, done.stdout)
    exp = tmp_path / "exp"
    summary = json.loads((exp / "data" / "train_filtered.json.summary.json").read_text())
    assert summary["utterances_in"] == len(read_lines(exp / "data" / "train.json")) == summary["kept"]
    assert not math.isnan(summary["cer_mean"])
    run = exp / "finetune" / "run_filtered" / "v1"
    assert (exp / "finetune" / "run" / "v1").is_dir() and run.is_dir()
    config_used = (run / "finetune_config.yaml").read_text()
    assert "train_filtered.json" in config_used
    assert_export_is_best(run, exp / f"de_from_{base.stem}_char.nemo", "de")
