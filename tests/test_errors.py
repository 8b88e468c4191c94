"""Bad input gets one `error: what; what to do` line and exit status 2, never a traceback, and leaves
nothing behind that a rerun could take for progress. Our own bugs keep their traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asr_transfer import cli
from asr_transfer.fileio import write_manifest
from tests.conftest import CONF, REPO, read_lines


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert "; " in lines[0], f"the line should say what to do: {lines[0]}"
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def without_text(tmp_path, prepared_de) -> str:
    """A manifest whose second line lacks "text"."""
    out, _ = prepared_de
    entries = read_lines(out / "dev.json")[:3]
    del entries[1]["text"]
    path = tmp_path / "no_text.json"
    write_manifest(path, entries)
    return str(path)


@pytest.fixture
def empty_manifest(tmp_path) -> str:
    path = tmp_path / "empty.json"
    path.write_text("", encoding="utf-8")
    return str(path)


def finetune_argv(tmp_path, german, *overrides) -> list[str]:
    return [
        "finetune",
        "--config",
        str(CONF / "tiny_quartznet_char.yaml"),
        f"vocab.dir={german['char']}",
        f"data.train_manifest={german['train']}",
        f"data.dev_manifest={german['dev']}",
        f"exp_manager.exp_dir={tmp_path / 'exp'}",
        "trainer.max_steps=1",
        "trainer.enable_progress_bar=false",
        *overrides,
    ]


def test_truncated_or_foreign_nemo_is_one_line_and_leaves_no_run_folder(tmp_path, german, tiny_base):
    truncated = tmp_path / "truncated.nemo"
    truncated.write_bytes(Path(tiny_base).read_bytes()[:300_000])
    not_gzip = tmp_path / "notes.nemo"
    not_gzip.write_text("this is not an archive\n" * 100, encoding="utf-8")
    for bad in (truncated, not_gzip):
        result = subprocess.run(
            [sys.executable, "-m", "asr_transfer.cli", *finetune_argv(tmp_path, german, f"init.nemo={bad}")],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert_one_error_line(result.stderr, f"init.nemo={bad}", "not a readable .nemo archive")
        assert not (tmp_path / "exp").exists(), "a failed run must not leave a run folder"


def test_failure_after_the_run_folder_exists_removes_it(tmp_path, german, tiny_base, capsys):
    """freeze.encoder_blocks=99 is found only once the model is built, after exp_manager made the folder."""
    code, _, err = run(capsys, *finetune_argv(tmp_path, german, f"init.nemo={tiny_base}", "freeze.encoder_blocks=99"))
    assert code == 2 and "freeze.encoder_blocks=99" in err
    assert not (tmp_path / "exp").exists(), "nor the exp_dir/name folders the run created"


def test_broken_architecture_file_is_one_line(tmp_path, german, capsys):
    """A YAML slip in an init.arch file (a duplicate key) or a file without model: is the user's to fix."""
    duplicate = tmp_path / "duplicate.yaml"
    duplicate.write_text("model:\n  sample_rate: 16000\nmodel:\n  sample_rate: 8000\n", encoding="utf-8")
    no_model = tmp_path / "no_model.yaml"
    no_model.write_text("encoder: {feat_in: 64}\n", encoding="utf-8")
    for bad, fragment in ((duplicate, "is not valid YAML"), (no_model, "has no model: section")):
        code, _, err = run(capsys, *finetune_argv(tmp_path, german, "init.scratch=true", f"init.arch={bad}"))
        assert code == 2
        assert_one_error_line(err, f"init.arch={bad}", fragment)
        assert not (tmp_path / "exp" / "run" / "v1").exists()


def test_manifest_without_text(capsys, tmp_path, german, tiny_base, without_text):
    code, _, err = run(capsys, "train-tokenizer", str(tmp_path / "tok"), "--manifest", without_text, "--lang", "de")
    assert code == 2
    assert_one_error_line(err, f"{without_text}:2", "missing field text")
    code, _, err = run(
        capsys, *finetune_argv(tmp_path, german, f"init.nemo={tiny_base}", f"data.dev_manifest={without_text}")
    )
    assert code == 2
    assert_one_error_line(err, "dev manifest", f"{without_text}:2")
    assert not (tmp_path / "exp").exists()
    # evaluate finds it before loading the model or transcribing anything
    code, _, err = run(capsys, "evaluate", "--model", "/nowhere/model.nemo", "--manifest", without_text)
    assert code == 2
    assert_one_error_line(err, f"{without_text}:2", "missing field text")


def test_empty_manifest(capsys, tmp_path, german, tiny_base, empty_manifest):
    for kind in ("char", "bpe"):
        argv = ["train-tokenizer", str(tmp_path / "tok"), "--manifest", empty_manifest, "--lang", "de", "--kind", kind]
        code, _, err = run(capsys, *argv, "--vocab-size", "32")
        assert code == 2
        assert_one_error_line(err, "holds no utterances")
    assert not (tmp_path / "tok").exists(), "no vocabulary may be written from an empty manifest"
    code, _, err = run(capsys, "evaluate", "--model", tiny_base, "--manifest", empty_manifest)
    assert code == 2
    assert_one_error_line(err, "evaluation manifest", "holds no utterances")
    code, _, err = run(
        capsys, *finetune_argv(tmp_path, german, f"init.nemo={tiny_base}", f"data.train_manifest={empty_manifest}")
    )
    assert code == 2
    assert_one_error_line(err, "training manifest", "holds no utterances")
    code, out, err = run(capsys, "manifest", "stats", empty_manifest)
    assert code == 0 and "empty (0 utterances)" in out and "None" not in out


def test_manifest_line_that_is_not_json(capsys, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"audio_filepath": "a.wav", "duration": 1.0, "text": "a"}\nnot json\n', encoding="utf-8")
    code, _, err = run(capsys, "manifest", "stats", str(path))
    assert code == 2
    assert_one_error_line(err, f"{path}:2", "not a JSON manifest line")
    path.write_text('["a list"]\n', encoding="utf-8")
    code, _, err = run(capsys, "manifest", "stats", str(path))
    assert code == 2
    assert_one_error_line(err, f"{path}:1", "JSON object")


def test_evaluate_with_deleted_audio(capsys, tmp_path, tiny_base, prepared_de):
    out, _ = prepared_de
    entries = read_lines(out / "dev.json")[:2]
    entries[1]["audio_filepath"] = str(tmp_path / "deleted.wav")
    manifest = tmp_path / "gone.json"
    write_manifest(manifest, entries)
    code, _, err = run(capsys, "evaluate", "--model", tiny_base, "--manifest", str(manifest))
    assert code == 2
    assert_one_error_line(err, "audio file missing", "deleted.wav")


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Only UserError becomes an error line; anything else is ours to fix and must stay visible."""
    from asr_transfer.manifests import tools

    def broken(argv):
        raise KeyError("a bug")

    monkeypatch.setattr(tools, "main", broken)
    with pytest.raises(KeyError, match="a bug"):
        cli.main(["manifest", "stats", "x.json"])


def test_help_of_every_command_is_plain_text_and_explains_every_option():
    for command in cli.COMMANDS:
        result = subprocess.run(
            [sys.executable, "-m", "asr_transfer.cli", command, "--help"], capture_output=True, text=True
        )
        assert result.returncode == 0, command
        assert "``" not in result.stdout and ":func:" not in result.stdout, f"{command} --help shows raw RST"
    import importlib

    for command, (module_name, _) in cli.COMMANDS.items():
        module = importlib.import_module(module_name)
        if not hasattr(module, "build_parser"):
            continue
        parsers = [module.build_parser()]
        for action in parsers[0]._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                parsers += list(action.choices.values())
        for parser in parsers:
            for action in parser._actions:
                if action.dest in ("help",) or action.__class__.__name__ == "_SubParsersAction":
                    continue
                assert action.help, f"{command}: {'/'.join(action.option_strings) or action.dest} has no help text"


def run_recipe(*args, cwd=REPO):
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(["bash", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_recipe_refuses_an_undeclared_option_and_lists_every_option(tmp_path):
    result = run_recipe(str(REPO / "recipes" / "de" / "run.sh"), "--stopstage", "3", "corpus")
    assert result.returncode == 2 and "unknown option --stopstage" in result.stderr
    assert "Stage" not in result.stdout, "no stage may run"
    for recipe in ("de", "demo", "domain", "en_base", "study"):
        result = run_recipe(str(REPO / "recipes" / recipe / "run.sh"), "--help")
        assert result.returncode == 0 and "Options (default):" in result.stdout, recipe
        for option in ("--stage", "--stop_stage"):
            assert option in result.stdout, (recipe, option)
    help_text = run_recipe(str(REPO / "recipes" / "de" / "run.sh"), "--help").stdout
    for option in ("--out", "--bpe_size", "--jobs", "--init_nemo", "--overrides", "--base"):
        assert option in help_text, option
    assert "--bpe_size       SentencePiece vocabulary size, for a BPE config (1024)" in help_text
    assert "--config" in help_text


@pytest.mark.slow
def test_recipe_names_its_own_option_for_a_missing_base(tmp_path):
    corpus = tmp_path / "cv"
    from asr_transfer.synth.synth_cv import synth_cv

    synth_cv("de", 12, str(corpus), seed=4, progress=False)
    result = run_recipe(
        str(REPO / "recipes" / "de" / "run.sh"), "cv", "--out", "out", "--init_nemo", "missing.nemo", cwd=tmp_path
    )
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert_one_error_line(result.stderr.splitlines()[-1], "--init_nemo missing.nemo does not exist")
    assert (tmp_path / "out" / "data" / "train.json").exists(), "relative paths are the caller's"
    assert not (tmp_path / "out" / "finetune").exists()


def test_layout_best_model_is_the_run_name_not_a_backup_or_last(tmp_path, capsys):
    run_dir = tmp_path / "exp" / "transfer" / "v1"
    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir(parents=True)
    for name in ("transfer-v1.nemo", "transfer-last.nemo", "transfer.nemo"):
        (checkpoints / name).write_bytes(b"x")
    code, out, _ = run(capsys, "export", "--print-best", str(run_dir))
    assert code == 0 and out.strip() == str(checkpoints / "transfer.nemo")
    (checkpoints / "transfer.nemo").unlink()
    code, _, err = run(capsys, "export", "--print-best", str(run_dir))
    assert code == 2
    assert_one_error_line(err, "checkpoints/transfer.nemo")


def test_layout_facts_come_from_one_place(capsys, tmp_path):
    """The recipes ask the CLI for the vocabulary folder and the run folder instead of spelling them out."""
    from asr_transfer.layout import vocab_dir

    code, out, _ = run(
        capsys, "train-tokenizer", "tok", "--lang", "de", "--kind", "bpe", "--vocab-size", "128", "--print-dir"
    )
    assert code == 0 and out.strip() == str(vocab_dir("tok", "de", "bpe", 128)) == "tok/de/spe_bpe_v128"
    code, out, _ = run(
        capsys, "finetune", "--config", str(CONF / "domain.yaml"), "exp_manager.exp_dir=x", "--print-run-dir"
    )
    assert code == 0 and out.strip() == "x/run/v1"
    for recipe in ("lib/cv_transfer.sh", "demo/run.sh", "domain/run.sh", "en_base/run.sh"):
        text = (REPO / "recipes" / recipe).read_text(encoding="utf-8")
        assert "checkpoints/" not in text and "/run/v1" not in text and "spe_bpe_v" not in text, recipe


def test_finetune_configs_hold_only_what_finetuning_reads():
    """A restored base brings its architecture: fine-tuning configs keep SpecAugment and the optimizer,
    and name an architecture file (read for scratch models) instead of holding one."""
    from omegaconf import OmegaConf

    from asr_transfer.training.config import load_config

    for path in sorted(CONF.glob("*.yaml")):
        cfg = load_config(str(path))
        assert set(cfg.model) <= {"spec_augment", "optim", "preprocessor"}, path.name
        assert not cfg.model.preprocessor, f"{path.name}: preprocessor keys to change belong to a user's override"
        if cfg.init.arch:
            arch = OmegaConf.load(cfg.init.arch).model
            assert set(arch) <= {"sample_rate", "preprocessor", "encoder", "decoder"}, cfg.init.arch
    assert json.loads(json.dumps(sorted(p.name for p in (CONF / "arch").glob("*.yaml")))) == [
        "citrinet1024_zh_char.yaml",
        "citrinet_zh_char.yaml",
        "conformer_ctc_bpe.yaml",
        "conformer_ctc_large_bpe.yaml",
        "fastconformer_ctc_large_bpe.yaml",
        "fastconformer_hybrid_large_bpe.yaml",
        "parakeet_ctc_0.6b_bpe.yaml",
        "quartznet15x5_char.yaml",
        "small_quartznet_char.yaml",
        "tiny_fastconformer_bpe.yaml",
        "tiny_quartznet_char.yaml",
    ]


def test_unset_config_keys_are_named(capsys):
    code, _, err = run(capsys, "finetune", "--config", str(CONF / "tiny_quartznet_char.yaml"))
    assert code == 2
    assert_one_error_line(err, "data.dev_manifest, data.train_manifest, vocab.dir unset")


def test_report_provenance_and_export_name_what_is_missing(capsys, tmp_path):
    for argv, fragment in (
        (["report", "demo", str(tmp_path), "--transfer", "x", "--scratch", "y"], "x holds no curves/metrics.csv"),
        (["report", "domain", str(tmp_path)], "holds no eval_before_new/"),
        (["provenance", "nowhere.nemo", "--config", "c.yaml", "--eval", "e.json"], "model nowhere.nemo does not exist"),
        (["export", "--print-best", str(tmp_path / "nowhere")], "nowhere does not exist"),
        (["export", "--run", str(tmp_path / "nowhere"), "--out", "x.nemo"], "nowhere does not exist"),
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2, argv
        assert_one_error_line(err, fragment)
