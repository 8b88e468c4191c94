"""What an ``asr-transfer`` command prints on the terminal, and what only goes to the run folder's log file.

In: :func:`setup`, called once by the console script before a command runs, with ``verbose`` from
``asr-transfer --verbose`` or the environment (``ASR_TRANSFER_VERBOSE=1``, which the recipes' ``--verbose
true`` exports). Out: NeMo's logger (``nemo_logger``) and Lightning's print WARNING and above on the
terminal, less a few lines that mislead or say nothing (:data:`HIDDEN`; CUDA-graph notices on a CPU).
Every line, INFO included and Lightning's too, goes to the run folder's
``nemo_log_globalrank-R_localrank-L.txt`` once :func:`to_run_folder` names the folder (this NeMo writes
that file only under NEMO_TESTING; it keeps its lines in memory until then, so a run's file starts at
the command's start). OneLogger's telemetry chatter (NeMo's OneLogger callback, no exporter configured)
is silenced at its logger, and the progress bars NeMo's n-gram LM loader draws at every load
(:data:`QUIET_BARS`) are switched off. Verbose: the terminal gets everything, as NeMo and Lightning would print it.

It imports neither NeMo nor Lightning (``asr-transfer --help`` stays fast): it works on logger objects,
whose handlers are filtered as NeMo and Lightning add them when imported, and on NeMo's module through an
import hook.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import logging
import os
import sys
from pathlib import Path

VERBOSE_ENV = "ASR_TRANSFER_VERBOSE"

# The loggers whose terminal handlers are filtered. NeMo's logger does not propagate; Lightning's print
# through their own stream handler when the root logger has none (that is, outside a configured app).
NEMO_LOGGER = "nemo_logger"
# Lightning logs under the name of whichever of its packages imported lightning_utilities' rank_zero last:
# NeMo imports the standalone pytorch_lightning too, so after NeMo its lines come from pytorch_lightning.
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")

# Lines of WARNING level that are hidden from the terminal (the log file keeps them), by a fragment:
HIDDEN = (
    # exp_manager's resume check on a new run: "... no checkpoints found ... Training from scratch." is
    # read as the opposite of a transfer run; resuming a run is still reported (KEPT_INFO).
    "There were no checkpoints found in checkpoint_dir",
    # Restoring a base: its saved data configs point nowhere; finetune sets both loaders up right after.
    "If you intend to do training or fine-tuning, please call the ModelPT.setup_training_data()",
    "If you intend to do validation, please call the ModelPT.setup_validation_data()",
    "If you intend to do testing, please call the ModelPT.setup_test_data()",
    # max_steps training: exp_manager's epoch arithmetic has nothing to check ("at least None epochs").
    "The checkpoint callback was told to monitor a validation value and trainer's max_steps",
    # A small corpus: fewer batches an epoch than Lightning's TensorBoard logging interval; harmless.
    "is smaller than the logging interval Trainer(log_every_n_steps",
    # Transcribing on a CPU: NeMo asks its loader for pinned memory, which only an accelerator has.
    "'pin_memory' argument is set as true but no accelerator is found",
    # export --onnx: NeMo's exporter drops the convolution masks, as it must; the exported graph takes the
    # valid frames only (asr_transfer.inference.onnx)
    "masked convolutions",
    # DDP: NeMo's CTC models log global_step once an epoch without sync_dist; every rank holds the same step.
    "self.log('global_step', ..., sync_dist=True)",
    # A BPE model's transcribe loader: NeMo passes a key Lhotse has no use for, and warns that tokenizing
    # in the main process may slow training with a very large tokenizer (ours hold up to a few thousand).
    "The following configuration keys are ignored by Lhotse dataloader",
    "You are using a non-tarred dataset and requested tokenization during data sampling",
)
# Decoding on a CPU: a line about CUDA graphs (NeMo's decoders spell it three ways) changes nothing there.
CPU_ONLY_NOISE = "cuda graph"

# NeMo modules whose own progress bars are switched off unless verbose: the n-gram LM loader draws three
# nested bars every time a decoder takes an ARPA file (tune-lm: once per grid point, 8 lines each).
QUIET_BARS = ("nemo.collections.asr.parts.submodules.ngram_lm.ngram_lm_batched",)

# INFO lines that a person needs on the terminal all the same, by their start:
KEPT_INFO = ("Resuming training from checkpoint",)

# verbose: setup()'s choice; run_log: the file handler to_run_folder() opened last.
_state: dict = {"verbose": False, "run_log": None}


def env_verbose() -> bool:
    """Whether ``ASR_TRANSFER_VERBOSE`` asks for the full log (``1``, ``true``, ``yes`` or ``on``)."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def is_verbose() -> bool:
    """Whether this process prints the full log: :func:`setup`'s choice, or else the environment's."""
    return _state["verbose"] or env_verbose()


def terminal_line(record: logging.LogRecord) -> bool:
    """Whether a NeMo or Lightning log record is printed on the terminal (not verbose: WARNING and above,
    less :data:`HIDDEN`, plus :data:`KEPT_INFO`)."""
    if is_verbose():
        return True
    message = record.getMessage()
    if record.levelno < logging.WARNING:
        return message.startswith(KEPT_INFO)
    if CPU_ONLY_NOISE in message.lower() and not _on_gpu():
        return False
    return not any(fragment in message for fragment in HIDDEN)


def _on_gpu() -> bool:
    torch = sys.modules.get("torch")  # NeMo has imported it by the time it logs
    return bool(torch is not None and torch.cuda.is_available())


class _TerminalFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return terminal_line(record)


_TERMINAL_FILTER = _TerminalFilter()


class _ToRunLog(logging.Handler):
    """Hands Lightning's records to NeMo's non-terminal handlers: the run's log file, or the buffer NeMo
    keeps until there is one, so that the run folder's log holds Lightning's lines too."""

    def emit(self, record: logging.LogRecord) -> None:
        for handler in logging.getLogger(NEMO_LOGGER).handlers:
            if not _is_terminal(handler) and record.levelno >= handler.level:
                handler.handle(record)


def _is_terminal(handler: logging.Handler) -> bool:
    # A FileHandler is a StreamHandler too; only the ones writing to a console stream are the terminal.
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)


def _guard(handler: logging.Handler) -> None:
    if _is_terminal(handler) and _TERMINAL_FILTER not in handler.filters:
        handler.addFilter(_TERMINAL_FILTER)


class _GuardedLogger(logging.Logger):
    """A logger whose terminal handlers pass through the terminal filter, those added later included
    (NeMo and Lightning add theirs when imported, and NeMo replaces them on some calls)."""

    def addHandler(self, handler: logging.Handler) -> None:
        _guard(handler)
        super().addHandler(handler)


def _guard_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    # Logger objects are shared by name: giving this one the subclass makes NeMo's or Lightning's later
    # getLogger(name) and addHandler calls go through the guard, whether or not they were imported yet.
    if type(logger) is logging.Logger:
        logger.__class__ = _GuardedLogger
    for handler in logger.handlers:
        _guard(handler)
    return logger


def _quiet_bars(module) -> None:
    bar = module.tqdm

    @functools.wraps(bar)
    def quiet(*args, **kwargs):
        if not is_verbose():
            kwargs["disable"] = True
        return bar(*args, **kwargs)

    module.tqdm = quiet


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``hooks[name](module)`` right after the module ``name`` is imported, so that NeMo's modules are
    adjusted without importing them here (``asr-transfer --help`` would take seconds)."""

    def __init__(self, hooks: dict):
        self.hooks = hooks

    def find_spec(self, name, path, target=None):
        hook = self.hooks.get(name)
        if hook is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_hook(module):
            exec_module(module)
            hook(module)

        spec.loader.exec_module = exec_then_hook  # this module's own loader object
        return spec


def _install_import_hooks() -> None:
    hooks = dict.fromkeys(QUIET_BARS, _quiet_bars)
    for name in QUIET_BARS:
        if name in sys.modules and not hasattr(sys.modules[name].tqdm, "__wrapped__"):
            _quiet_bars(sys.modules[name])  # imported before setup(): adjusted in place
    if not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(hooks))


def setup(verbose: bool | None = None) -> None:
    """Sets up the terminal log of this process (idempotent; safe to call again with another choice).

    ``verbose``: True prints the full log and exports ``ASR_TRANSFER_VERBOSE=1`` so that child processes
    (DDP workers, tools a command starts) print it too; None takes the environment's choice.
    """
    if verbose is None:
        verbose = env_verbose()
    elif verbose:
        os.environ[VERBOSE_ENV] = "1"
    _state["verbose"] = bool(verbose)
    _guard_logger(NEMO_LOGGER)
    _install_import_hooks()
    for name in LIGHTNING_LOGGERS:
        logger = _guard_logger(name)
        if not any(isinstance(handler, _ToRunLog) for handler in logger.handlers):
            logger.addHandler(_ToRunLog())
    # OneLogger's loggers have no handler: Python prints their warnings ("Setting error_handling_strategy",
    # "No exporters were provided") on stderr by itself; ERROR and above still are.
    logging.getLogger("nv_one_logger").setLevel(logging.NOTSET if verbose else logging.ERROR)


def to_run_folder(run_dir: str | os.PathLike, global_rank: int = 0, local_rank: int = 0) -> Path | None:
    """Sends NeMo's and Lightning's lines, from now on, to the run folder's
    ``nemo_log_globalrank-R_localrank-L.txt`` (this process's ranks); returns its path, or None where NeMo
    writes one itself (NEMO_TESTING=1 makes exp_manager open it). The first call of a process also writes
    every line NeMo kept in memory since it was imported; a later call (several runs in one process, as in
    a study) moves the log from the previous run's file to this one. Call after NeMo's exp_manager, which
    opens ``nemo_error_log.txt`` from the same buffer of warnings."""
    from nemo.utils import logging as nemo_logging

    path = Path(run_dir) / f"nemo_log_globalrank-{global_rank}_localrank-{local_rank}.txt"
    handlers = nemo_logging._handlers  # NeMo's own table of its handlers, by role
    previous = handlers.get("file")
    if previous is not None:
        if previous is not _state.get("run_log"):
            return None  # exp_manager's own file, under NEMO_TESTING
        if Path(previous.baseFilename) == path.absolute():
            return path
        logging.getLogger(NEMO_LOGGER).removeHandler(previous)
        previous.close()
    # NeMo's own call: it flushes what NeMo has buffered since import into the new file.
    nemo_logging.add_file_handler(path)
    _state["run_log"] = handlers["file"]
    return path


@contextlib.contextmanager
def native_stderr_quiet():
    """Keep what native code writes to file descriptor 2 off the terminal for the block (not verbose):
    SentencePiece's trainer logs each of its ~60 steps there through absl, which Python's logging cannot
    filter. Failures still reach the user: the library raises them as exceptions."""
    if is_verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
