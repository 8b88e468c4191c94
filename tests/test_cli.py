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
