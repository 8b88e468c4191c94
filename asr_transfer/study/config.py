"""The study config: a typed schema (``OmegaConf.structured``) with its defaults, and its cross-field checks.

In: a study YAML (``recipes/study/conf/*.yaml``) and ``key=value`` overrides. Out: a ``DictConfig`` typed
by :class:`StudyConfig`: an unknown key or a value of the wrong type is a :class:`ConfigError` naming
it, and so is a config whose parts disagree (an arm that is not defined, a budget outside (0, 1]).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from asr_transfer.layout import TOKENIZER_KINDS
from asr_transfer.training.config import ConfigError, apply_overrides

FULL_BUDGET = 1.0
ARM_INITS = ("scratch", "base")


@dataclass
class SynthCorpus:
    """A synthetic Common Voice release made for the study (``asr-transfer synth-cv``)."""

    clips: int = 600
    seed: int = 0
    accents: list[str] = field(default_factory=list)


@dataclass
class StudyData:
    synth: SynthCorpus | None = None
    train_manifest: str | None = None
    dev_manifest: str | None = None
    test_manifest: str | None = None
    subset_seed: int = 0  # the data budgets' random subsets; one seed nests a smaller inside a larger


@dataclass
class StudyVocab:
    kind: str = "char"  # char, bpe or unigram
    dir: str | None = None  # an existing vocabulary folder; else one is trained from the training manifest
    vocab_size: int = 128


@dataclass
class StudyBase:
    nemo: str | None = None
    pretrained: str | None = None


@dataclass
class Arm:
    init: str = "base"  # scratch or base
    overrides: list[str] = field(default_factory=list)  # asr-transfer finetune overrides of this arm


@dataclass
class Comparison:
    """A sentence of RESULTS.md: ``arm`` against ``against``."""

    name: str = ""
    arm: str = ""
    against: str = ""


@dataclass
class StudyConfig:
    name: str = "study"
    description: str = ""
    lang: str = "de"
    out_dir: str = "exp/study/${name}"
    data: StudyData = field(default_factory=StudyData)
    vocab: StudyVocab = field(default_factory=StudyVocab)
    finetune_config: str = "???"  # an asr-transfer finetune config (recipes/conf/*.yaml)
    base: StudyBase = field(default_factory=StudyBase)
    steps: int = 150  # every arm's schedule length (trainer.max_steps), the same for all arms
    val_every: int = 25
    # Early stopping: a run ends after this many validations without a new best dev value of the language's
    # primary metric (null: every run trains all its steps). The speed-up protocol (README "Transfer
    # study") sets 3: scratch trained until it stops improving, both arms on the same schedule.
    patience: int | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    target: float = 0.6  # dev value of the language's primary metric (WER, CER for Cantonese): steps to it
    budgets: list[float] = field(default_factory=lambda: [FULL_BUDGET])
    budget_arms: list[str] | None = None  # arms that run at every budget (default: all)
    reference_arm: str = "scratch"  # steps-to-target ratios are this arm's steps over each arm's
    comparisons: list[Comparison] = field(default_factory=list)
    evaluate_base: bool = False  # the base on the target test set before any training
    inspect: bool = True  # per-layer weight change of each transfer arm against the base
    overrides: list[str] = field(default_factory=list)  # finetune overrides for every arm
    arms: dict[str, Arm] = field(default_factory=dict)


# Input paths written in a study config file are relative to that file; given as overrides, to the
# working directory. out_dir is an output, and relative to the working directory.
FILE_RELATIVE_KEYS = (
    "finetune_config",
    "base.nemo",
    "vocab.dir",
    "data.train_manifest",
    "data.dev_manifest",
    "data.test_manifest",
)


def _resolve_file_paths(cfg: DictConfig, folder: str) -> DictConfig:
    for key in FILE_RELATIVE_KEYS:
        value = OmegaConf.select(cfg, key)
        if value and not os.path.isabs(value):
            OmegaConf.update(cfg, key, os.path.normpath(os.path.join(folder, value)))
    return cfg


RENAMED_KEYS = {"target_wer": "target"}  # old key -> new key; an old key is refused, naming the new one


def _refuse_renamed_keys(path: str, from_file: DictConfig, overrides: list[str]) -> None:
    """``target_wer`` became ``target`` when the study's speed columns moved to the language's primary
    metric: a CER language's target is a CER, and the old name would say otherwise."""
    given = set(from_file) | {override.lstrip("+~").split("=", 1)[0] for override in overrides}
    for old, new in RENAMED_KEYS.items():
        if old in given:
            raise ConfigError(
                f"{path}: {old} was renamed {new} (a dev value of the language's primary metric, WER or CER); "
                f"rename the key to {new}"
            )


def load_study_config(path: str, overrides: list[str] | None = None) -> DictConfig:
    if not os.path.isfile(path):
        raise ConfigError(
            f"study config {path} does not exist; give a file such as recipes/study/conf/de_synthetic.yaml"
        )
    try:
        from_file = OmegaConf.load(path)
        _refuse_renamed_keys(path, from_file, list(overrides or []))
        from_file = _resolve_file_paths(from_file, os.path.dirname(os.path.abspath(path)))
        cfg = OmegaConf.merge(OmegaConf.structured(StudyConfig), from_file)
        cfg = apply_overrides(cfg, list(overrides or []))
    except OmegaConfBaseException as error:
        raise ConfigError(f"{path}: {' '.join(str(error).split())}; fix the study config") from None
    validate_config(cfg)
    return cfg


def budget_arms(cfg: DictConfig) -> list[str]:
    return list(cfg.budget_arms) if cfg.budget_arms is not None else list(cfg.arms)


def validate_config(cfg: DictConfig) -> None:
    """What the schema's types cannot say: which sections go together, and names that must exist."""
    data = cfg.data
    if not data.synth and not (data.train_manifest and data.dev_manifest and data.test_manifest):
        raise ConfigError(
            "no target data; give data.synth (a synthetic corpus) or data.train_manifest, dev_manifest, test_manifest"
        )
    if not cfg.arms:
        raise ConfigError("the study has no arms; give arms: {scratch: {init: scratch}, transfer: {init: base}}")
    for name, arm in cfg.arms.items():
        if arm.init not in ARM_INITS:
            raise ConfigError(f"arm {name}: init {arm.init!r} is unknown; use scratch or base")
    uses_base = any(arm.init == "base" for arm in cfg.arms.values())
    if uses_base and not (cfg.base.nemo or cfg.base.pretrained):
        raise ConfigError("an arm starts from the base, but no base is set; set base.nemo or base.pretrained")
    if cfg.reference_arm not in cfg.arms:
        raise ConfigError(
            f"reference_arm {cfg.reference_arm} is not one of the arms {list(cfg.arms)}; name one of them"
        )
    for arm in budget_arms(cfg):
        if arm not in cfg.arms:
            raise ConfigError(
                f"budget_arms names {arm}, which is not one of the arms {list(cfg.arms)}; name one of them"
            )
    for comparison in cfg.comparisons:
        for arm in (comparison.arm, comparison.against):
            if arm not in cfg.arms:
                raise ConfigError(
                    f"comparison {comparison.name!r} names arm {arm!r}, which is not one of {list(cfg.arms)}"
                )
    for budget in cfg.budgets:
        if not 0 < float(budget) <= FULL_BUDGET:
            raise ConfigError(f"budget {budget} is not a fraction in (0, 1]; give fractions of the training hours")
    if cfg.patience is not None and cfg.patience < 1:
        raise ConfigError(f"patience {cfg.patience} is not a number of validations; give 1 or more, or null")
    if cfg.vocab.kind not in TOKENIZER_KINDS:
        raise ConfigError(f"vocab.kind {cfg.vocab.kind} is unknown; use {', '.join(TOKENIZER_KINDS)}")
