"""Restoring base models, building models from config, and swapping their vocabulary.

In: an ``init`` config (a NeMo/NGC/Hugging Face name, a ``.nemo`` path, or ``scratch``), a ``model``
config (the architecture, for scratch models and char-to-BPE rebuilds) and a ``vocab`` config (a
character ``vocab.txt`` folder or a SentencePiece folder). Out: a NeMo ``EncDecCTCModel`` or
``EncDecCTCModelBPE`` with the target vocabulary. With ``keep_shared_tokens`` the output-layer rows of
tokens both vocabularies hold (and the blank) start from the base's weights instead of random ones.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from asr_transfer.bases import BaseModelUnavailable
from asr_transfer.tokenizers.train import read_labels
from asr_transfer.training.config import ConfigError


def is_bpe(model) -> bool:
    return hasattr(model, "tokenizer") and model.tokenizer is not None


def target_labels(vocab_cfg: DictConfig) -> list[str]:
    return read_labels(Path(vocab_cfg.dir) / "vocab.txt")


def restore_pretrained(name: str, map_location: str = "cpu", local_option: str = "init.nemo="):
    """A base by catalog name or Hugging Face id (asr_transfer/bases.yaml): shipped file, Hugging Face
    cache, NeMo's NGC cache, then a download. Unresolvable: one error naming every place tried, and how
    to give a local file instead (``local_option``: how the user names ``init.nemo``)."""
    from asr_transfer.bases import resolve
    from asr_transfer.training.hybrid import restore_as_ctc as restore_model  # hybrids continue as CTC

    try:
        path = resolve(name)
    except BaseModelUnavailable as error:
        option = local_option
        example = f"{option}/path/to/model.nemo" if option.endswith("=") else f"{option} /path/to/model.nemo"
        raise BaseModelUnavailable(f"{error} ({example})") from None
    return restore_model(path, f"init.pretrained={name} ->", map_location=map_location)


def restore_base(init_cfg: DictConfig, map_location: str = "cpu", option_names: dict | None = None):
    """The base an ``init`` config names; errors name the user's options (``option_names``, see
    :func:`asr_transfer.training.run.option_name`)."""
    from asr_transfer.training.hybrid import restore_as_ctc as restore_model  # hybrids continue as CTC
    from asr_transfer.training.run import option_name

    if init_cfg.get("nemo"):
        return restore_model(init_cfg.nemo, option_name(option_names, "init.nemo"), map_location=map_location)
    if init_cfg.get("pretrained"):
        return restore_pretrained(init_cfg.pretrained, map_location, option_name(option_names, "init.nemo"))
    raise ConfigError(
        "no base model is set; set init.pretrained (a NeMo model name), init.nemo (a .nemo file) or init.scratch=true"
    )


def build_model(model_cfg: DictConfig, vocab_cfg: DictConfig, trainer=None):
    """A model of ``model_cfg``'s architecture with random weights and the target vocabulary."""
    from nemo.collections.asr.models import EncDecCTCModel, EncDecCTCModelBPE

    cfg = copy.deepcopy(model_cfg)
    with open_dict(cfg):
        if vocab_cfg.kind == "char":
            model_class = EncDecCTCModel
            labels = target_labels(vocab_cfg)
            cfg.labels = labels
            cfg.decoder.vocabulary = labels
            cfg.decoder.num_classes = len(labels)
            cfg.pop("tokenizer", None)
        else:
            model_class = EncDecCTCModelBPE
            cfg.tokenizer = {"dir": str(vocab_cfg.dir), "type": "bpe"}
            cfg.decoder.vocabulary = []
            cfg.decoder.num_classes = -1
            cfg.pop("labels", None)
        # restore_from instantiates the class the saved config's target names; a config copied from a
        # base of the other kind would otherwise restore as the base's class.
        cfg.target = f"{model_class.__module__}.{model_class.__name__}"
    return model_class(cfg=cfg, trainer=trainer)


def _decoder_layer(model) -> torch.nn.Conv1d:
    return model.decoder.decoder_layers[0]


def _snapshot_output_layer(model) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    layer = _decoder_layer(model)
    return list(model.decoder.vocabulary), layer.weight.detach().clone(), layer.bias.detach().clone()


def copy_shared_rows(model, old_vocabulary: list[str], old_weight: torch.Tensor, old_bias: torch.Tensor) -> int:
    """Start the rows of tokens the old and new vocabularies share (and the blank) from the old weights.

    Returns the number of shared tokens (blank excluded)."""
    layer = _decoder_layer(model)
    if layer.weight.shape[1:] != old_weight.shape[1:]:
        raise ValueError("the new decoder's input width differs from the base's; cannot carry rows over")
    old_index = {token: index for index, token in enumerate(old_vocabulary)}
    shared = [(new, old_index[token]) for new, token in enumerate(model.decoder.vocabulary) if token in old_index]
    with torch.no_grad():
        for new, old in shared:
            layer.weight[new] = old_weight[old]
            layer.bias[new] = old_bias[old]
        layer.weight[-1] = old_weight[-1]  # CTC blank is the last class in NeMo
        layer.bias[-1] = old_bias[-1]
    return len(shared)


def char_to_bpe(base, vocab_cfg: DictConfig):
    """Rebuild a character model as a BPE model with the target tokenizer, carrying over the
    preprocessor and encoder weights (NeMo has no single call for this)."""
    with open_dict(base.cfg):
        model_cfg = copy.deepcopy(base.cfg)
        for key in ("train_ds", "validation_ds", "test_ds"):
            model_cfg.pop(key, None)
    bpe_vocab = OmegaConf.create({"kind": "bpe", "dir": vocab_cfg.dir})
    model = build_model(model_cfg, bpe_vocab)
    model.preprocessor.load_state_dict(base.preprocessor.state_dict())
    model.encoder.load_state_dict(base.encoder.state_dict())
    return model


def swap_vocabulary(base, vocab_cfg: DictConfig):
    """Give ``base`` the target vocabulary (``kind: keep`` leaves it as it is); returns the model (a new
    object for char->BPE) and the number of decoder rows carried over from shared tokens."""
    if vocab_cfg.kind == "keep":  # domain adaptation: same language, same output layer
        return base, len(base.decoder.vocabulary)
    old_vocabulary, old_weight, old_bias = _snapshot_output_layer(base)
    if vocab_cfg.kind == "char":
        if is_bpe(base):
            raise ConfigError(
                "a BPE base cannot take a character target; use vocab.kind=bpe with a SentencePiece folder"
            )
        labels = target_labels(vocab_cfg)
        base.change_vocabulary(new_vocabulary=labels)
        # NeMo leaves cfg.labels at the old alphabet; its transcribe() then warns that the data
        # loader's labels differ from the model's on every call.
        with open_dict(base.cfg):
            base.cfg.labels = labels
        model = base
    elif is_bpe(base):
        base.change_vocabulary(new_tokenizer_dir=str(vocab_cfg.dir), new_tokenizer_type="bpe")
        model = base
    else:
        model = char_to_bpe(base, vocab_cfg)
    shared = 0
    if vocab_cfg.get("keep_shared_tokens", True):
        shared = copy_shared_rows(model, old_vocabulary, old_weight, old_bias)
    return model, shared
