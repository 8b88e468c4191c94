"""Where things live: the folder and file names that more than one step must agree on.

In: a root folder and the inputs that name an output (language, vocabulary kind and size; a run's
``exp_manager`` settings). Out: paths. A step's skip check and its writer both call these; the recipes
ask for them through the console script (``train-tokenizer --print-dir``, ``finetune --print run-dir``,
``export --print-best``) instead of spelling them out, so a folder name is decided here and nowhere else.
"""

from __future__ import annotations

import os
from pathlib import Path

from asr_transfer.errors import InputError

# Vocabulary kinds. A SentencePiece model, BPE or unigram, is what NeMo's ``bpe`` tokenizer type loads.
CHAR = "char"
SENTENCEPIECE = "bpe"  # NeMo's tokenizer type for any SentencePiece model
KEEP = "keep"  # fine-tuning keeps the base's own vocabulary (domain adaptation)
SENTENCEPIECE_KINDS = (SENTENCEPIECE, "unigram")  # SentencePiece model types train-tokenizer trains
TOKENIZER_KINDS = (CHAR, *SENTENCEPIECE_KINDS)  # train-tokenizer --kind
VOCAB_KINDS = (CHAR, SENTENCEPIECE, KEEP)  # finetune vocab.kind

# Every data-building step (prepare-cv, prepare-folder, shard, filter) accounts for each input line in a
# rejects table and writes its counts to a summary.
REJECTS_FILE = "rejects.tsv"
SUMMARY_FILE = "summary.json"


def rejects_path(folder: str | os.PathLike) -> Path:
    """``FOLDER/rejects.tsv``: the lines a step left out, with the reason."""
    return Path(folder) / REJECTS_FILE


def summary_path(folder: str | os.PathLike) -> Path:
    """``FOLDER/summary.json``: a step's counts (``prepare-*``, ``shard``) or results (``evaluate``)."""
    return Path(folder) / SUMMARY_FILE


def rejects_beside(out: str | os.PathLike) -> str:
    """``OUT.rejects.tsv``: the rejects of a step whose output is one file (``filter``, ``train-lm``)."""
    return f"{os.fspath(out)}.{REJECTS_FILE}"


def summary_beside(out: str | os.PathLike) -> str:
    """``OUT.summary.json``: the counts of a step whose output is one file (``filter``)."""
    return f"{os.fspath(out)}.{SUMMARY_FILE}"


def vocab_dir(root: str | os.PathLike, lang: str, kind: str, vocab_size: int | None = None) -> Path:
    """``ROOT/<lang>/char`` or ``ROOT/<lang>/spe_<kind>_v<N>``: the folder name encodes its inputs."""
    if kind == CHAR:
        return Path(root) / lang / CHAR
    return Path(root) / lang / f"spe_{kind}_v{vocab_size}"


def vocab_done_file(folder: str | os.PathLike, kind: str) -> Path:
    """The file whose presence means a vocabulary folder is complete (written last, or moved in whole)."""
    return Path(folder) / ("vocab.txt" if kind == CHAR else "tokenizer.model")


def vocab_folder_kind(folder: str | os.PathLike) -> str | None:
    """What a ``train-tokenizer`` folder holds: ``bpe`` (a SentencePiece model, BPE or unigram, which NeMo's
    ``bpe`` tokenizer type loads), ``char`` (only ``vocab.txt``), or None (neither). A SentencePiece folder
    holds a ``vocab.txt`` too, so the model file decides."""
    if vocab_done_file(folder, SENTENCEPIECE).is_file():
        return SENTENCEPIECE
    if vocab_done_file(folder, CHAR).is_file():
        return CHAR
    return None


def run_dir(exp_dir: str | os.PathLike, name: str, version: str) -> Path:
    """A fine-tuning run's folder, as NeMo's exp_manager lays it out: ``exp_dir/name/version``."""
    return Path(exp_dir) / str(name) / str(version)


def run_dir_of(exp_manager_cfg) -> Path:
    """The run folder a fine-tuning config's ``exp_manager`` section names."""
    return run_dir(exp_manager_cfg.exp_dir, exp_manager_cfg.name, exp_manager_cfg.version)


def trained_model_name(cfg) -> str:
    """What a fine-tuning config trains, as a file stem: ``<lang>_from_<base>_<vocabulary>``, e.g.
    ``de_from_en_tiny_quartznet_char_spe_bpe_v64``, ``de_scratch_<arch>_char``, or ``..._tuned`` when the
    base keeps its vocabulary (domain adaptation). The base is the
    ``init.nemo`` file's stem or the last part of ``init.pretrained``, so an export is named after the
    model that was trained, not after a recipe option."""
    init = cfg.init
    if init.get("scratch"):
        origin = "scratch_" + Path(str(init.get("arch") or "arch")).stem
    else:
        base = init.get("nemo") or init.get("pretrained") or "base"
        origin = "from_" + Path(str(base)).name.removesuffix(".nemo")
    vocabulary = "tuned" if cfg.vocab.kind == KEEP else Path(str(cfg.vocab.dir)).name
    return f"{cfg.get('lang') or 'model'}_{origin}_{vocabulary}"


def checkpoints_dir(run: str | os.PathLike) -> Path:
    return Path(run) / "checkpoints"


def metrics_path(run: str | os.PathLike) -> Path:
    """The dev-metrics curve of a run. In a folder because exp_manager moves a resumed run's loose files."""
    return Path(run) / "curves" / "metrics.csv"


def eval_dir(out: str | os.PathLike, name: str) -> Path:
    """``OUT/eval_<name>``: the folder of one ``asr-transfer evaluate --out`` in a recipe's output folder."""
    return Path(out) / f"eval_{name}"


# The demo's evaluations (recipes/demo): each arm greedy, and the transferred model with beam search and
# with the tuned LM; the domain recipe's: before and after adaptation, on the new and the original domain.
DEMO_EVALS = ("transfer", "scratch", "transfer_beam", "transfer_lm")
DOMAIN_EVALS = ("before_new", "after_new", "before_original", "after_original")


def demo_plot(out: str | os.PathLike) -> Path:
    """The demo's plot of dev WER against steps, beside its RESULTS.md."""
    return Path(out) / "dev_wer.png"


def recipe_paths(out: str | os.PathLike, recipe: str) -> dict[str, Path]:
    """What ``report demo`` / ``report domain --print WHAT`` names: ``eval-<name>`` (dashes for
    underscores) for each evaluation folder, and ``plot`` for the demo's plot."""
    names = DEMO_EVALS if recipe == "demo" else DOMAIN_EVALS
    paths = {"eval-" + name.replace("_", "-"): eval_dir(out, name) for name in names}
    if recipe == "demo":
        paths["plot"] = demo_plot(out)
    return paths


def best_nemo(run: str | os.PathLike) -> Path:
    """The run's best model: ``checkpoints/<exp_manager.name>.nemo``, which NeMo's checkpoint callback
    rewrites from each new best checkpoint and at the end of training from the best one.

    Other ``.nemo`` files there are not it: ``<name>-last.nemo`` is the last step, and ``<name>-v1.nemo``
    is the backup NeMo moves the previous best to while it writes the new one (left behind only by a
    kill). A ``.nemo`` file given instead of a run folder is its own best."""
    path = Path(run)
    if path.is_file() and path.suffix == ".nemo":
        return path
    if not path.is_dir():
        raise InputError(f"{run} does not exist; give a fine-tuning run folder (exp_dir/name/version) or a .nemo file")
    best = checkpoints_dir(path) / f"{path.resolve().parent.name}.nemo"
    if not best.is_file():
        raise InputError(
            f"{run} holds no {best.relative_to(path)}; give a fine-tuning run folder (exp_dir/name/version) "
            f"whose training validated at least once"
        )
    return best
