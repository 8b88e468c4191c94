"""The ``asr-transfer`` console script: one sub-command per tool, each a module with ``main(argv) -> int``.

In: ``asr-transfer <command> [arguments]``. Out: whatever the command's module does; its exit status.
A problem the user can fix (:class:`asr_transfer.errors.UserError`) is reported here, and only here, as
one ``error: <what is wrong>; <what to do>`` line with exit status 2; any other exception is a bug and
keeps its traceback. Modules are imported only when their command runs, so ``--help`` stays fast.

Naming rule: a command module's ``main(argv)`` parses arguments and returns the exit status; the work
itself is a Python function named for what it does (``finetune(cfg)``, ``run_study(cfg)``,
``evaluate(...)``), which raises instead of printing errors.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "prepare-cv": ("asr_transfer.manifests.prepare_cv", "Common Voice folder or tarball -> NeMo manifests"),
    "prepare-folder": ("asr_transfer.manifests.prepare_folder", "audio folder, CSV/TSV or manifest -> manifest"),
    "prepare-noise": ("asr_transfer.manifests.prepare_noise", "folder of noise or RIR recordings -> manifest"),
    "shard": ("asr_transfer.manifests.shard_manifest", "manifest -> Lhotse Shar shards for multi-GPU training"),
    "manifest": ("asr_transfer.manifests.tools", "manifest stats | validate | merge | subset"),
    "new-language": ("asr_transfer.languages.derive", "Common Voice release -> draft language file for its locale"),
    "train-tokenizer": ("asr_transfer.tokenizers.train", "manifests -> char vocabulary or SentencePiece folder"),
    "synth-cv": ("asr_transfer.synth.synth_cv", "synthetic Common Voice release spoken by espeak-ng"),
    "bases": ("asr_transfer.bases", "base-model catalog: list, what is cached, fetch NAME"),
    "train-lm": ("asr_transfer.lm.train", "token-level n-gram LM (ARPA) for NeMo's beam search, without KenLM"),
    "tune-lm": ("asr_transfer.lm.tune", "LM weight and length bonus of beam search, grid-searched on dev"),
    "tune-boost": ("asr_transfer.inference.boost", "weight of a phrase list's boosting tree, tuned on dev"),
    "finetune": ("asr_transfer.training.finetune", "restore a base, swap its vocabulary, fine-tune, save .nemo"),
    "shrink": ("asr_transfer.shrink.run", "several small students from one large model (Hannan et al. 2025)"),
    "evaluate": ("asr_transfer.inference.evaluate", "WER/CER of a .nemo model on a manifest"),
    "transcribe": ("asr_transfer.inference.transcribe", "transcripts of audio files or a manifest"),
    "filter": ("asr_transfer.inference.filter", "training manifest cleaned by a model: drop lines above a CER"),
    "export": ("asr_transfer.inference.export", "a run's best (or averaged) model as a stand-alone .nemo / ONNX"),
    "inspect": ("asr_transfer.analysis.introspect", "per-layer weight change between a base and a tuned model"),
    "study": ("asr_transfer.study.grid", "transfer study: arms x data budgets, curves, plots, RESULTS.md"),
    "report": ("asr_transfer.analysis.report", "RESULTS.md and dev-curve plots of the demo and domain recipes"),
    "provenance": ("asr_transfer.analysis.provenance", "provenance JSON (sha256, config, dev WER) beside a .nemo"),
}


def usage() -> str:
    lines = ["usage: asr-transfer [--verbose] <command> [--help] [arguments]", "", "commands:"]
    lines += [f"  {name:<16} {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += [
        "",
        "--verbose (or ASR_TRANSFER_VERBOSE=1): NeMo's and Lightning's full log on the terminal; without it,",
        "their INFO lines go only to the run folder's nemo_log_*.txt.",
        "Run `asr-transfer <command> --help` for a command's arguments.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = bool(argv) and argv[0] == "--verbose"
    if verbose:
        argv = argv[1:]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from asr_transfer import __version__

        print(__version__)
        return 0
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"error: unknown command {argv[0]!r}; use one of the commands below\n\n{usage()}", file=sys.stderr)
        return 2
    from asr_transfer import logs
    from asr_transfer.errors import USER_ERROR_EXIT, UserError

    # Before the command imports NeMo or Lightning: their terminal handlers are filtered as they are added.
    logs.setup(verbose=True if verbose else None)
    try:
        return importlib.import_module(command[0]).main(argv[1:]) or 0
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return USER_ERROR_EXIT


if __name__ == "__main__":
    sys.exit(main())
