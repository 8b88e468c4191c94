"""The terminal log of a command: what a person reads (a line per validation, warnings that matter), with
NeMo's and Lightning's INFO lines in the run folder's log file, and all of it back with --verbose."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import torch

from asr_transfer import logs
from tests.conftest import CONF

# After the \r with which tqdm clears its bar, where one is shown.
VALIDATION_LINE = re.compile(r"step 2/2: dev WER \d\.\d{3}, dev CER \d\.\d{3}; best dev WER \d\.\d{3} \(step 2\)\n")


def _finetune(tmp_path, german, tiny_base, *global_options: str) -> str:
    """A 2-step transfer run through the console script; its terminal output, stdout and stderr."""
    command = [
        *(sys.executable, "-m", "asr_transfer.cli", *global_options, "finetune"),
        *("--config", str(CONF / "tiny_quartznet_char.yaml"), f"init.nemo={tiny_base}"),
        f"vocab.dir={german['char']}",
        f"data.train_manifest={german['train']}",
        f"data.dev_manifest={german['dev']}",
        f"exp_manager.exp_dir={tmp_path / 'exp'}",
        *("data.batch_size=4", "trainer.max_steps=2", "trainer.val_check_interval=2"),
    ]
    env = {key: value for key, value in os.environ.items() if key != logs.VERBOSE_ENV}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_finetune_terminal_is_short_and_the_run_folder_keeps_the_rest(tmp_path, german, tiny_base):
    terminal = _finetune(tmp_path, german, tiny_base)
    for noise in ("OneLogger", "No exporters", "Training from scratch", "Total params", "Optimizer config"):
        assert noise not in terminal, f"{noise!r} on the terminal:\n{terminal}"
    assert "[NeMo I" not in terminal and "GPU available" not in terminal, terminal
    assert VALIDATION_LINE.search(terminal), f"no line for the validation at step 2:\n{terminal}"
    (log_file,) = (tmp_path / "exp").rglob("nemo_log_globalrank-0_localrank-0.txt")
    full_log = log_file.read_text(encoding="utf-8")
    # NeMo's INFO and warnings and Lightning's INFO, all in the run folder.
    for line in ("Optimizer config", "Training from scratch", "GPU available"):
        assert line in full_log, f"{line!r} missing from {log_file}"
    assert "Total params" in (log_file.parent / "model_summary.txt").read_text(encoding="utf-8")


def test_verbose_brings_the_full_log_back(tmp_path, german, tiny_base):
    terminal = _finetune(tmp_path, german, tiny_base, "--verbose")
    for line in ("[NeMo I", "Optimizer config", "GPU available", "Total params"):
        assert line in terminal, f"{line!r} missing with --verbose"
    assert VALIDATION_LINE.search(terminal)


def test_terminal_filter_rules(monkeypatch):
    monkeypatch.delenv(logs.VERBOSE_ENV, raising=False)

    def record(level: int, message: str) -> logging.LogRecord:
        return logging.LogRecord("nemo_logger", level, __file__, 1, message, None, None)

    try:
        logs.setup(verbose=False)
        assert not logs.terminal_line(record(logging.INFO, "Dataset loaded with 274 files"))
        assert logs.terminal_line(record(logging.INFO, "Resuming training from checkpoint: last.ckpt"))
        assert not logs.terminal_line(record(logging.WARNING, "There were no checkpoints found in checkpoint_dir"))
        assert logs.terminal_line(record(logging.WARNING, "The dataloader does not have many workers"))
        on_cpu = record(logging.WARNING, "Cannot use decoder with CUDA graphs, reason: no GPU")
        assert logs.terminal_line(on_cpu) == torch.cuda.is_available()
        logs.setup(verbose=True)
        assert os.environ[logs.VERBOSE_ENV] == "1", "child processes must inherit --verbose"
        assert logs.terminal_line(record(logging.INFO, "Dataset loaded with 274 files"))
    finally:
        logs.setup(verbose=False)
        # setup(verbose=True) exported the variable; monkeypatch restores only what existed before, so a
        # leak would make every later test's subprocess print NeMo's full log
        os.environ.pop(logs.VERBOSE_ENV, None)
