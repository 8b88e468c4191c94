"""The console script: every command explains itself."""

import subprocess
import sys

import pytest

from asr_transfer.cli import COMMANDS, main


def test_top_level_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_unknown_command(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_help(command):
    result = subprocess.run(
        [sys.executable, "-m", "asr_transfer.cli", command, "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "usage:" in result.stdout and len(result.stdout) > 200


def test_the_facts_recipes_ask_for_load_neither_torch_nor_nemo(tmp_path):
    """A recipe asks `finetune --print`, `train-tokenizer --print-dir` and `export --print-best` before every
    run; each answer is read from the config alone, without the seconds torch and NeMo take to import."""
    from tests.conftest import CONF

    probe = (
        "import sys\n"
        "from asr_transfer.cli import main\n"
        "for argv in (['finetune', '--config', sys.argv[1], 'vocab.dir=tokenizers/de/char', '--print', what]\n"
        "             for what in ('run-dir', 'model-name', 'vocab.kind')):\n"
        "    assert main(argv) == 0\n"
        "assert main(['train-tokenizer', 'tokenizers', '--lang', 'de', '--kind', 'bpe', '--print-dir']) == 0\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('torch', 'nemo', 'lightning')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(CONF / "tiny_quartznet_char.yaml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["exp/tiny_quartznet_char/run/v1", "model_from_base_char", "char"]
    assert lines[-1] == "[]"
