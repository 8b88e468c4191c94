"""Fine-tuning configs: the typed schema, a YAML file over it, and Hydra-style overrides over that.

In: a YAML path (keys of :class:`asr_transfer.training.schema.FinetuneConfig`; a file may ``inherit:``
another, see :mod:`asr_transfer.inherit`) and overrides in Hydra's grammar (``key=value`` changes a key,
``+key=value`` adds one where a section takes free keys: ``trainer``, ``model.optim``,
``model.spec_augment``, ``model.preprocessor``; ``~key`` deletes one there). Out: a typed OmegaConf
``DictConfig``. An unknown
or misspelt key, in the file or an override, or a value of the wrong type, is a :class:`ConfigError`
naming the key and the nearest valid one. ``trainer.precision`` and ``accelerator`` are resolved for
this machine (bf16-mixed on GPUs that have it, 16-mixed on older GPUs, 32 on CPU). ``init.arch`` names
an architecture file (``recipes/conf/arch/``); written in a config file it is relative to that file,
given as an override it is relative to the working directory.
"""

from __future__ import annotations

import difflib
import inspect
import os
from functools import cache

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from asr_transfer.errors import UserError
from asr_transfer.inherit import resolve_inherit
from asr_transfer.languages import primary_metric


class ConfigError(UserError):
    pass


def nearest(word: str, choices) -> str:
    """`` (nearest: KEY)`` for the closest of ``choices``, or a list of them when none is close."""
    choices = sorted(str(choice) for choice in choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    if close:
        return f"nearest valid key: {close[0]}"
    return f"valid keys: {', '.join(choices)}" if choices else "the section takes no keys"


def missing_key_error(cfg: DictConfig, key: str) -> ConfigError:
    """The error for ``key``, which ``cfg`` lacks: names the first missing part and its nearest sibling."""
    parts = key.split(".")
    for depth in range(1, len(parts) + 1):
        prefix = ".".join(parts[:depth])
        if OmegaConf.select(cfg, prefix, default=_ABSENT) is _ABSENT:
            return unknown_key_error(prefix, _keys_at(cfg, ".".join(parts[: depth - 1])))
    return unknown_key_error(key, _keys_at(cfg, key.rpartition(".")[0]))


_ABSENT = object()


def unknown_key_error(full_key: str, valid) -> ConfigError:
    parent, _, leaf = full_key.rpartition(".")
    section = f"{parent}." if parent else ""
    suggestion = nearest(leaf, valid)
    prefix = suggestion.split(": ", 1)
    if len(prefix) == 2 and prefix[0] == "nearest valid key":
        suggestion = f"nearest valid key: {section}{prefix[1]}"
    return ConfigError(f"{full_key} is not a key of the config; {suggestion}")


def _keys_at(cfg: DictConfig, dotted_parent: str) -> list[str]:
    node = OmegaConf.select(cfg, dotted_parent) if dotted_parent else cfg
    return list(node.keys()) if isinstance(node, DictConfig) else []


def _takes_free_keys(cfg: DictConfig, dotted_parent: str) -> bool:
    """True for a section typed as a plain mapping (trainer, model.optim ...), false for a schema section."""
    node = OmegaConf.select(cfg, dotted_parent) if dotted_parent else cfg
    return isinstance(node, DictConfig) and OmegaConf.get_type(node) is dict


def _parse_overrides(overrides: list[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        try:
            (override,) = parser.parse_overrides([text])
        except HydraException as error:
            raise ConfigError(
                f"override {text!r} cannot be read ({' '.join(str(error).split())[:200]}); write key=value, and quote "
                f"a value holding spaces, commas or brackets: key='value'"
            ) from None
        if override.is_sweep_override():
            raise ConfigError(f"override {text!r} is a sweep; quote a value holding commas: key='a,b'")
        parsed.append(override)
    return parsed


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """``overrides`` (Hydra's grammar) applied to ``cfg`` in place; returns it."""
    for override in _parse_overrides(list(overrides)):
        key = override.key_or_group
        parent, _, leaf = key.rpartition(".")
        exists = leaf in _keys_at(cfg, parent)
        if override.is_delete():
            if not exists:
                raise ConfigError(f"cannot delete {key}: {missing_key_error(cfg, key)}")
            if not _takes_free_keys(cfg, parent):
                raise ConfigError(
                    f"cannot delete {key}: every key of the schema has a value; change it with {key}=VALUE"
                )
            with open_dict(cfg):
                OmegaConf.select(cfg, parent).pop(leaf) if parent else cfg.pop(leaf)
            continue
        value = override.value()
        if override.is_add() or override.is_force_add():
            if exists and override.is_add():
                raise ConfigError(f"{key} is already in the config; write {key}={value} to change it")
            if not exists and not _takes_free_keys(cfg, parent):
                raise missing_key_error(cfg, key)
            with open_dict(cfg):
                OmegaConf.update(cfg, key, value, merge=True, force_add=True)
            continue
        if not exists:
            if _takes_free_keys(cfg, parent):
                raise ConfigError(f"{key} is not in the config; write +{key}={value} to add a new key")
            raise missing_key_error(cfg, key)
        try:
            OmegaConf.update(cfg, key, value, merge=True)
        except OmegaConfBaseException as error:
            raise ConfigError(f"{key}={value}: {_short(error)}; give a value of the key's type") from None
    return cfg


def _short(error: OmegaConfBaseException) -> str:
    return " ".join(str(error).split("\n")[0].split()) if str(error) else type(error).__name__


def _read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"config {path} does not exist; give a file such as recipes/conf/tiny_quartznet_char.yaml")
    with open(path, encoding="utf-8") as handle:
        try:
            raw = yaml.safe_load(handle) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"config {path} is not valid YAML ({' '.join(str(error).split())}); fix it") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} holds no mapping of keys; see recipes/conf/tiny_quartznet_char.yaml")
    arch = (raw.get("init") or {}).get("arch") if isinstance(raw.get("init"), dict) else None
    if arch and not os.path.isabs(arch):
        raw["init"]["arch"] = os.path.join(os.path.dirname(os.path.abspath(path)), arch)
    return raw


def _parent_config(name: str, child: str) -> tuple[dict, str]:
    path = os.path.join(os.path.dirname(child), name)
    if not os.path.isfile(path) and os.path.basename(name) == "common.yaml":
        raise ConfigError(
            f"{child} inherits {name}, which no longer exists: the shared defaults are built in "
            f"(asr_transfer/training/schema.py); delete the inherit: line"
        )
    return _read_yaml(path), os.path.abspath(path)


def config_from_file(path: str) -> DictConfig:
    """The schema with the file (and what it inherits) laid over it."""
    raw = resolve_inherit(_read_yaml(path), os.path.abspath(path), _parent_config)
    return merged_onto_schema(raw, path)


def merged_onto_schema(raw: dict, source: str) -> DictConfig:
    from asr_transfer.training.schema import FinetuneConfig

    cfg = OmegaConf.structured(FinetuneConfig)
    try:
        cfg = OmegaConf.merge(cfg, raw)
    except ConfigKeyError as error:
        full_key = str(error.full_key or error.key)
        parent = full_key.rpartition(".")[0]
        raise ConfigError(f"{source}: {unknown_key_error(full_key, _keys_at(cfg, parent))}") from None
    except OmegaConfBaseException as error:
        raise ConfigError(f"{source}: {error.full_key}: {_short(error)}; give a value of the key's type") from None
    return cfg


def init_parameters(cls) -> tuple[str, ...]:
    """The keyword arguments of ``cls.__init__`` (``self`` left out): the keys a config section for it takes."""
    return tuple(name for name in inspect.signature(cls.__init__).parameters if name != "self")


@cache
def trainer_parameters() -> tuple[str, ...]:
    import lightning.pytorch as pl

    return init_parameters(pl.Trainer)


def check_library_keys(cfg: DictConfig) -> None:
    """``trainer`` holds only Lightning ``Trainer`` arguments and ``exp_manager`` only keys of NeMo's
    ``ExpManagerConfig`` (a misspelt one would be a TypeError or an OmegaConf error deep inside them).
    Checked when a run starts, where both libraries are imported anyway."""
    from nemo.utils.exp_manager import ExpManagerConfig

    for key in cfg.trainer.keys():
        if key not in trainer_parameters():
            raise unknown_key_error(f"trainer.{key}", trainer_parameters())
    try:
        OmegaConf.merge(OmegaConf.structured(ExpManagerConfig), cfg.exp_manager)
    except ConfigKeyError as error:
        full_key = f"exp_manager.{error.full_key or error.key}"
        parent = full_key.rpartition(".")[0].removeprefix("exp_manager").lstrip(".")
        schema = OmegaConf.structured(ExpManagerConfig)
        raise unknown_key_error(full_key, _keys_at(schema, parent)) from None
    except OmegaConfBaseException as error:
        raise ConfigError(f"exp_manager.{error.full_key}: {_short(error)}; give a value of the key's type") from None


def load_arch(path: str | None) -> DictConfig:
    """The ``model`` section of an architecture file: preprocessor, encoder, decoder, sample rate."""
    if not path:
        raise ConfigError("init.scratch=true needs an architecture; set init.arch=recipes/conf/arch/NAME.yaml")
    if not os.path.isfile(path):
        raise ConfigError(f"init.arch={path} does not exist; name a file of recipes/conf/arch/")
    try:
        arch = OmegaConf.load(path)
    except (yaml.YAMLError, OmegaConfBaseException) as error:
        problem = " ".join(str(error).split())
        raise ConfigError(f"init.arch={path} is not valid YAML ({problem}); fix the file") from None
    if not isinstance(arch, DictConfig) or not isinstance(arch.get("model"), DictConfig):
        raise ConfigError(f"init.arch={path} has no model: section; an architecture file holds model: {{encoder: ...}}")
    return arch.model


def load_config(path: str, overrides: list[str] | None = None) -> DictConfig:
    """The typed fine-tuning config of ``path`` with ``overrides`` applied (see the module docstring)."""
    return apply_overrides(config_from_file(path), list(overrides or []))


def auto_precision(accelerator: str, cuda_available: bool, bf16_supported: bool) -> str:
    """``trainer.precision=auto`` for a resolved ``trainer.accelerator`` and the machine's CUDA facts (the
    caller reads them from torch.cuda): bf16-mixed on a GPU that has bf16, 16-mixed on an older GPU, 32 on
    CPU, also on a GPU machine told ``trainer.accelerator=cpu``."""
    if accelerator not in ("gpu", "cuda") or not cuda_available:
        return "32"
    return "bf16-mixed" if bf16_supported else "16-mixed"


def resolve_monitor(cfg: DictConfig) -> DictConfig:
    """Checkpoints (and so the run's best model) follow the target language's primary metric unless the
    config names ``exp_manager.checkpoint_callback_params.monitor`` itself; early stopping watches what the
    checkpoints do unless it names its own monitor."""
    params = cfg.exp_manager.checkpoint_callback_params
    with open_dict(cfg):
        if params.get("monitor") is None:
            params.monitor = f"val_{primary_metric(cfg.get('lang'))}"
        stopping = cfg.exp_manager.get("early_stopping_callback_params")
        if stopping is not None and stopping.get("monitor") is None:
            stopping.monitor = params.monitor
            stopping.mode = params.get("mode", "min")
    return cfg


def resolve_trainer(cfg: DictConfig) -> DictConfig:
    with open_dict(cfg):
        trainer = cfg.trainer
        import torch  # here, not at the top: `finetune --print` answers recipes without loading torch

        cuda = torch.cuda.is_available()
        if trainer.get("accelerator", "auto") == "auto":
            trainer.accelerator = "gpu" if cuda else "cpu"
        if str(trainer.get("precision", "auto")) == "auto":  # after the accelerator: accelerator=cpu means 32
            trainer.precision = auto_precision(str(trainer.accelerator), cuda, cuda and torch.cuda.is_bf16_supported())
        if str(trainer.precision) in ("16-mixed", "bf16-mixed", "16", "bf16") and trainer.accelerator == "cpu":
            raise ConfigError(f"trainer.precision={trainer.precision} needs a GPU; use trainer.precision=32 on CPU")
        devices = trainer.get("devices", 1)
        nodes = trainer.get("num_nodes", 1)
        if trainer.get("strategy", "auto") == "auto" and (devices not in (1, "1") or nodes != 1):
            trainer.strategy = "ddp"
        interval, max_steps = trainer.get("val_check_interval"), trainer.get("max_steps")
        if isinstance(interval, int) and isinstance(max_steps, int) and 0 < max_steps < interval:
            # A run shorter than its config's validation interval would never validate: no dev curve, and
            # NeMo exports its last weights as the "best" model. It validates once, at its last step.
            trainer.val_check_interval = max_steps
        if cfg.get("data") is not None and cfg.data.get("shar_path"):
            # Shards are an endless stream, split by rank here rather than by a sampler: a Lightning "epoch"
            # is then a fixed number of batches, one validation interval (NeMo's own Lhotse setting).
            trainer.use_distributed_sampler = False
            if not isinstance(trainer.get("limit_train_batches"), int):
                interval = trainer.get("val_check_interval")
                trainer.limit_train_batches = interval if isinstance(interval, int) else 1000
    return cfg
