"""What to train: freeze the lower encoder blocks, re-initialize the top ones, unfreeze later.

In: a NeMo CTC model and the ``freeze`` config (``encoder_blocks`` N, ``keep_norm_trainable``,
``reinit_top`` K, ``until_step`` S). Out: the model with ``requires_grad`` set, and a Lightning callback
that keeps frozen BatchNorm statistics fixed and unfreezes everything at step S.
"""

from __future__ import annotations

import torch
from lightning.pytorch import Callback

from asr_transfer.training.config import ConfigError

NORM_TYPES = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.LayerNorm, torch.nn.GroupNorm)


def encoder_blocks(model) -> list[torch.nn.Module]:
    """The encoder's stacked blocks, bottom first: Jasper/QuartzNet/Citrinet blocks or Conformer layers."""
    encoder = model.encoder
    if hasattr(encoder, "layers"):
        return list(encoder.layers)
    if hasattr(encoder, "encoder"):
        return list(encoder.encoder)
    raise ConfigError(
        f"freezing does not know the blocks of a {type(encoder).__name__} encoder; leave freeze.encoder_blocks "
        f"and freeze.reinit_top at 0"
    )


def _is_squeeze_excite(module: torch.nn.Module) -> bool:
    return type(module).__name__ == "SqueezeExcite"


def freeze_lower_blocks(model, count: int, keep_norm_trainable: bool = True) -> list[torch.nn.Module]:
    """Freeze the first ``count`` blocks (BatchNorm and SqueezeExcite stay trainable, as NeMo's
    tutorial does, unless ``keep_norm_trainable`` is false). Returns the frozen blocks."""
    blocks = encoder_blocks(model)
    if count > len(blocks):
        raise ConfigError(f"freeze.encoder_blocks={count}, but the encoder has only {len(blocks)} blocks; freeze fewer")
    frozen = blocks[:count]
    for block in frozen:
        for parameter in block.parameters():
            parameter.requires_grad = False
        if keep_norm_trainable:
            for module in block.modules():
                if isinstance(module, NORM_TYPES) or _is_squeeze_excite(module):
                    for parameter in module.parameters():
                        parameter.requires_grad = True
    if count and hasattr(model.encoder, "pre_encode"):
        for parameter in model.encoder.pre_encode.parameters():
            parameter.requires_grad = False
    return frozen


def reinit_top_blocks(model, count: int) -> int:
    """Re-initialize the top ``count`` encoder blocks (Coqui STT's drop_source_layers)."""
    blocks = encoder_blocks(model)
    if count > len(blocks):
        raise ConfigError(
            f"freeze.reinit_top={count}, but the encoder has only {len(blocks)} blocks; re-initialize fewer"
        )
    reset = 0
    for block in blocks[len(blocks) - count :]:
        for module in block.modules():
            if hasattr(module, "reset_parameters") and module is not block:
                module.reset_parameters()
                reset += 1
    return reset


def trainable_fraction(model) -> float:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable / total if total else 0.0


class FreezeSchedule(Callback):
    """Keeps frozen blocks' norm statistics fixed when asked, and unfreezes at ``until_step``."""

    def __init__(self, frozen: list[torch.nn.Module], keep_norm_trainable: bool, until_step: int | None):
        self.frozen = frozen
        self.keep_norm_trainable = keep_norm_trainable
        self.until_step = until_step
        self.unfrozen = False

    def _fix_norm_statistics(self) -> None:
        if self.keep_norm_trainable or self.unfrozen:
            return
        for block in self.frozen:
            for module in block.modules():
                if isinstance(module, NORM_TYPES):
                    module.eval()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._fix_norm_statistics()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.until_step is not None and not self.unfrozen and trainer.global_step >= self.until_step:
            for parameter in pl_module.parameters():
                parameter.requires_grad = True
            for block in self.frozen:
                block.train()
            self.unfrozen = True
        self._fix_norm_statistics()
