"""The ``asr-transfer`` console script: one sub-command per tool, each a module with ``main(argv)``.

In: ``asr-transfer <command> [arguments]``. Out: whatever the command's module does; its exit status.
Modules are imported only when their command runs (``module:function`` names another entry point),
so ``--help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "prepare-cv": ("asr_transfer.manifests.prepare_cv", "Common Voice folder or tarball -> NeMo manifests"),
    "prepare-folder": ("asr_transfer.manifests.prepare_folder", "audio folder, CSV/TSV or manifest -> manifest"),
    "manifest": ("asr_transfer.manifests.tools", "manifest stats | validate | merge | subset"),
    "train-tokenizer": ("asr_transfer.tokenizers.train", "manifests -> char vocabulary or SentencePiece folder"),
    "synth-cv": ("asr_transfer.synth.synth_cv", "synthetic Common Voice release spoken by espeak-ng"),
    "finetune": ("asr_transfer.training.finetune:cli", "restore a base, swap its vocabulary, fine-tune, save .nemo"),
    "evaluate": ("asr_transfer.training.evaluate", "WER/CER of a .nemo model on a manifest"),
    "transcribe": ("asr_transfer.training.transcribe", "transcripts of audio files or a manifest"),
    "export": ("asr_transfer.training.export", "a run's best model as a stand-alone .nemo"),
    "inspect": ("asr_transfer.training.introspect", "per-layer weight change between a base and a tuned model"),
    "study": ("asr_transfer.study.grid:cli", "transfer study: arms x data budgets, curves, plots, RESULTS.md"),
}


def usage() -> str:
    lines = ["usage: asr-transfer <command> [--help] [arguments]", "", "commands:"]
    lines += [f"  {name:<16} {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "Run `asr-transfer <command> --help` for a command's arguments."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from asr_transfer import __version__

        print(__version__)
        return 0
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"error: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, _, function = command[0].partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, function or "main")(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
