"""Fine-tuning configs: YAML files plus NeMo/Hydra-style overrides, and resolution of ``auto`` values.

In: a YAML path (which may ``inherit:`` a shared file such as ``recipes/conf/common.yaml``) and
overrides (``key=value`` changes an existing key, ``+key=value`` adds a new one, ``~key`` deletes one).
Out: an OmegaConf ``DictConfig`` with ``trainer.precision`` and ``accelerator`` resolved for this
machine (bf16-mixed on GPUs that have it, 16-mixed on older GPUs, 32 on CPU). ``init.arch`` names an
architecture file (``recipes/conf/arch/``); written in a config file it is relative to that file,
given as an override it is relative to the working directory.
"""

from __future__ import annotations

import os

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from asr_transfer.errors import UserError


class ConfigError(UserError):
    pass


def _has_key(cfg: DictConfig, dotted: str) -> bool:
    *parents, leaf = dotted.split(".")
    node = cfg
    for part in parents:
        if not isinstance(node, DictConfig) or part not in node.keys():
            return False
        node = node[part]
    # keys() also lists mandatory values not yet set (???), which `in` would not.
    return isinstance(node, DictConfig) and leaf in node.keys()


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    for override in overrides:
        if override.startswith("~"):
            key = override[1:].split("=")[0]
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(cfg, parent) if parent else cfg
            if node is None or leaf not in node:
                raise ConfigError(f"cannot delete {key}: no such key")
            with open_dict(node):
                node.pop(leaf)
            continue
        if "=" not in override:
            raise ConfigError(f"override {override!r} is not key=value")
        add = override.startswith("+")
        key, value = override.lstrip("+").split("=", 1)
        if not add and not _has_key(cfg, key):
            raise ConfigError(f"{key} is not in the config; write +{key}={value} to add a new key")
        with open_dict(cfg):
            cfg.merge_with(OmegaConf.from_dotlist([f"{key}={value}"]))
    return cfg


def _load_with_inheritance(path: str) -> DictConfig:
    """A config file; ``inherit: other.yaml`` (relative to the file) is loaded first and overlaid."""
    if not os.path.isfile(path):
        raise ConfigError(f"config {path} does not exist; give a file such as recipes/conf/tiny_quartznet_char.yaml")
    cfg = OmegaConf.load(path)
    arch = OmegaConf.select(cfg, "init.arch")
    if arch and not os.path.isabs(arch):
        cfg.init.arch = os.path.join(os.path.dirname(os.path.abspath(path)), arch)
    parent = cfg.pop("inherit", None) if "inherit" in cfg else None
    if parent:
        cfg = OmegaConf.merge(_load_with_inheritance(os.path.join(os.path.dirname(path), parent)), cfg)
    return cfg


def load_arch(path: str | None) -> DictConfig:
    """The ``model`` section of an architecture file: preprocessor, encoder, decoder, sample rate."""
    if not path:
        raise ConfigError("init.scratch=true needs an architecture; set init.arch=recipes/conf/arch/NAME.yaml")
    if not os.path.isfile(path):
        raise ConfigError(f"init.arch={path} does not exist; name a file of recipes/conf/arch/")
    return OmegaConf.load(path).model


def load_config(path: str, overrides: list[str] | None = None) -> DictConfig:
    cfg = _load_with_inheritance(path)
    return apply_overrides(cfg, list(overrides or []))


def auto_precision() -> str:
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32"


def primary_metric(lang: str | None) -> str:
    """``wer`` or ``cer``: the metric a language is judged on (its language file's ``metric``)."""
    from asr_transfer.languages import load_language

    return load_language(lang).metric if lang else "wer"


def resolve_monitor(cfg: DictConfig) -> DictConfig:
    """Checkpoints (and so the run's best model) follow the target language's primary metric unless the
    config names ``exp_manager.checkpoint_callback_params.monitor`` itself."""
    params = cfg.exp_manager.checkpoint_callback_params
    if params.get("monitor") is None:
        with open_dict(cfg):
            params.monitor = f"val_{primary_metric(cfg.get('lang'))}"
    return cfg


def resolve_trainer(cfg: DictConfig) -> DictConfig:
    with open_dict(cfg):
        trainer = cfg.trainer
        if str(trainer.get("precision", "auto")) == "auto":
            trainer.precision = auto_precision()
        if trainer.get("accelerator", "auto") == "auto":
            trainer.accelerator = "gpu" if torch.cuda.is_available() else "cpu"
        if str(trainer.precision) in ("16-mixed", "bf16-mixed", "16", "bf16") and trainer.accelerator == "cpu":
            raise ConfigError(f"trainer.precision={trainer.precision} needs a GPU; use trainer.precision=32 on CPU")
        devices = trainer.get("devices", 1)
        nodes = trainer.get("num_nodes", 1)
        if trainer.get("strategy", "auto") == "auto" and (devices not in (1, "1") or nodes != 1):
            trainer.strategy = "ddp"
        if cfg.get("data") is not None and cfg.data.get("shar_path"):
            # Shards are an endless stream, split by rank here rather than by a sampler: a Lightning "epoch"
            # is then a fixed number of batches, one validation interval (NeMo's own Lhotse setting).
            trainer.use_distributed_sampler = False
            if not isinstance(trainer.get("limit_train_batches"), int):
                interval = trainer.get("val_check_interval")
                trainer.limit_train_batches = interval if isinstance(interval, int) else 1000
    return cfg
