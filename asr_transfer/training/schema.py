"""The fine-tuning config's schema: every key ``asr-transfer finetune`` reads, its type and its default.

In: nothing (dataclasses). Out: :class:`FinetuneConfig`, read with ``OmegaConf.structured`` by
:mod:`asr_transfer.training.config`, which overlays a config file (``recipes/conf/*.yaml``) and
command-line overrides on it. A key that is not here (a misspelling in a file or an override) is refused
with the nearest valid key; a value of the wrong type is refused with the key's type. Two sections take
their keys from the libraries that read them: ``trainer`` (the parameters of Lightning's ``Trainer``) and
``exp_manager`` (NeMo's own ``ExpManagerConfig``), checked by
:func:`asr_transfer.training.config.check_library_keys` when a run starts. ``model.spec_augment``
and ``model.optim`` are NeMo configs passed through as they are (NeMo checks them when it builds them);
``model.preprocessor`` holds keys of the base's preprocessor to change (checked when it is rebuilt).

This module is the one place these defaults are written; the recipe configs hold only what differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from asr_transfer.manifests.pipeline import BuildOptions


@dataclass
class InitConfig:
    """Where the weights come from: a catalog base, a ``.nemo`` file, or random (``scratch``)."""

    pretrained: str | None = None  # a base of asr_transfer/bases.yaml (`asr-transfer bases`) or a Hugging Face id
    nemo: str | None = None  # or a .nemo file
    scratch: bool = False  # true: random weights with init.arch's architecture (the from-scratch arm)
    arch: str | None = None  # architecture file (recipes/conf/arch/), relative to the config that names it


@dataclass
class VocabConfig:
    kind: str = "char"  # char (vocab.txt folder), bpe (SentencePiece folder) or keep (the base's)
    dir: str | None = MISSING  # output of train-tokenizer, e.g. tokenizers/de/char
    keep_shared_tokens: bool = True  # decoder rows of tokens both vocabularies hold start from the base


@dataclass
class FreezeConfig:
    encoder_blocks: int = 0  # freeze the first N encoder blocks
    keep_norm_trainable: bool = True  # BatchNorm and SqueezeExcite in frozen blocks stay trainable
    reinit_top: int = 0  # re-initialize the top K encoder blocks
    until_step: int | None = None  # unfreeze everything at this step


@dataclass
class DistillConfig:
    """Knowledge distillation (asr-transfer shrink's KD baseline)."""

    teacher: str | None = None  # a .nemo with the model's vocabulary: loss = (1-w)*CTC + w*T^2*KL(teacher||model)
    temperature: float = 2.0
    weight: float = 0.5


@dataclass
class SpeedPerturbConfig:
    """NeMo's ``SpeedPerturbation`` on the manifest path (the Lhotse path adds fixed 0.9x and 1.1x copies)."""

    prob: float = 0.5  # share of training utterances that are perturbed
    min_rate: float = 0.9
    max_rate: float = 1.1


@dataclass
class DataConfig:
    train_manifest: str | None = MISSING  # not needed when shar_path is set
    shar_path: str | None = None  # a shard folder (asr-transfer shard, prepare-cv --shar): each rank reads its own
    dev_manifest: str | None = MISSING
    batch_size: int = 16
    num_workers: int = 0
    max_duration: float = BuildOptions.max_duration  # prepare-cv's limits, so its output trains whole
    min_duration: float = BuildOptions.min_duration
    check_lengths: bool = True  # leave out utterances with more labels than encoder frames (CTC T >= U)
    speed_perturb: bool = False
    speed_perturb_params: SpeedPerturbConfig = field(default_factory=SpeedPerturbConfig)
    # Noise and reverberation from the user's recordings (asr-transfer prepare-noise), training set only:
    # NeMo's NoisePerturbation / ImpulsePerturbation on manifests, lhotse's mix / reverb on the Lhotse path.
    noise_manifest: str | None = None  # manifest of noise clips mixed into training audio
    noise_snr_db: list[float] = field(default_factory=lambda: [0.0, 20.0])  # [min, max] SNR, drawn uniformly
    noise_prob: float = 0.5  # share of training utterances that get noise
    rir_manifest: str | None = None  # manifest of room impulse responses convolved with training audio
    rir_prob: float = 0.5  # share of training utterances that are reverberated
    bucketing: bool = False  # NeMo's Lhotse path with duration buckets (GPU runs)
    batch_duration: float = 600  # seconds of audio per bucketed batch
    num_buckets: int = 10
    # Lhotse holds each buffered cut's audio in memory, per loader worker. Manifests are read in order, so
    # their buffer is NeMo's default; shards are shuffled when written and read in a shuffled order, so
    # a fifth of it mixes enough.
    shuffle_buffer_size: int = 10000
    shar_shuffle_buffer_size: int = 2000


@dataclass
class ModelConfig:
    """What fine-tuning reads of ``model``; the architecture is the base's (or ``init.arch``'s)."""

    spec_augment: Any | None = None  # NeMo's SpectrogramAugmentation config (_target_ and its arguments)
    # keys of the base's (or init.arch's) preprocessor to change, e.g. exact_pad: true, the framing
    # sherpa-onnx computes (README, export --onnx); free keys, checked against NeMo's preprocessor
    preprocessor: dict[str, Any] = field(default_factory=dict)
    optim: Any = MISSING  # NeMo's optimizer config: name, lr, betas, weight_decay, sched


def default_trainer() -> dict:
    """Lightning ``Trainer`` arguments; any other parameter of ``Trainer`` may be added."""
    return {
        "devices": 1,
        "num_nodes": 1,
        "strategy": "auto",  # ddp when devices or num_nodes > 1 (SLURM is detected by Lightning)
        "accelerator": "auto",
        "precision": "auto",  # bf16-mixed on GPUs that have it, 16-mixed on older GPUs, 32 on CPU
        "max_steps": 300,
        "max_epochs": -1,
        "val_check_interval": 50,
        "check_val_every_n_epoch": None,
        "log_every_n_steps": 10,
        "num_sanity_val_steps": 0,
        "gradient_clip_val": 1.0,
        "enable_progress_bar": True,
    }


def default_exp_manager() -> dict:
    """NeMo's exp_manager settings: the run folder is ``exp_dir/name/version``; a rerun resumes it. Any key of
    NeMo's ``ExpManagerConfig`` may be added; they are checked against it when a run starts (importing NeMo
    here would cost every ``--print`` seconds)."""
    return {
        "exp_dir": "exp/${name}",
        "name": "run",
        "version": "v1",
        "use_datetime_version": False,
        "resume_if_exists": True,
        "resume_ignore_no_checkpoint": True,
        "create_tensorboard_logger": True,
        "create_checkpoint_callback": True,
        "checkpoint_callback_params": {
            "monitor": None,  # null: val_ plus the language's primary metric (val_cer for yue, zh-HK, zh)
            "mode": "min",
            "save_top_k": 1,
            "save_last": True,
            "always_save_nemo": True,
            "save_best_model": True,
            "every_n_train_steps": None,
        },
        "log_step_timing": False,
        # Off unless asked for (finetune --patience N, the study's patience): a run then ends after N
        # validations without a new best of the checkpoint monitor (min_delta 0: any gain is a new best).
        "create_early_stopping_callback": False,
        "early_stopping_callback_params": {
            "mode": "min",
            "patience": 3,
            "min_delta": 0.0,
            "verbose": False,
            "check_on_train_epoch_end": False,
        },
    }


@dataclass
class FinetuneConfig:
    name: str = "run"  # the config's name; exp_manager.exp_dir defaults to exp/<name>
    seed: int = 0  # torch's seed before the model is built and trained
    lang: str | None = None  # target language (asr_transfer/languages); its primary metric picks the best model
    init: InitConfig = field(default_factory=InitConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    freeze: FreezeConfig = field(default_factory=FreezeConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: dict[str, Any] = field(default_factory=default_trainer)
    exp_manager: dict[str, Any] = field(default_factory=default_exp_manager)
