"""Students: a teacher's model with fewer encoder layers, everything else (preprocessor, vocabulary,
width, CTC head) the same, so that stock NeMo restores each as the teacher's own class.

In: a ``.nemo`` path (the teacher, or a trained student to cut shorter) and which of its layers to keep.
Out: a NeMo model whose config names the smaller layer list, with random weights or with the kept
layers' weights. Conformer and FastConformer keep any N of their layers. QuartzNet, Jasper and Citrinet
(``ConvASREncoder``) keep their first block and every block whose widths change, and drop only blocks
whose input and output widths are equal, so that the widths of the blocks left still fit together.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, open_dict

from asr_transfer.errors import UserError


class ShrinkError(UserError):
    pass


@dataclass(frozen=True)
class LayerList:
    """The encoder's repeated layers: how many, where their weights live, which a student may drop."""

    kind: str  # "conformer" or "jasper"
    prefix: str  # state-dict prefix of layer i: f"{prefix}{i}."
    count: int
    removable: tuple[int, ...]

    @property
    def smallest(self) -> int:
        return self.count - len(self.removable)


def jasper_removable(blocks) -> tuple[int, ...]:
    """Blocks whose input width is their output width: the previous block's filters equal theirs."""
    return tuple(
        index
        for index in range(1, len(blocks) - 1)
        if int(blocks[index].filters) == int(blocks[index - 1].filters) and int(blocks[index].stride[0]) == 1
    )


def layer_list(model) -> LayerList:
    encoder_cfg = model.cfg.encoder
    name = type(model.encoder).__name__
    if name == "ConformerEncoder" and "n_layers" in encoder_cfg:
        count = int(encoder_cfg.n_layers)
        return LayerList("conformer", "encoder.layers.", count, tuple(range(count)))
    if name == "ConvASREncoder" and "jasper" in encoder_cfg:
        blocks = encoder_cfg.jasper
        return LayerList("jasper", "encoder.encoder.", len(blocks), jasper_removable(blocks))
    raise ShrinkError(
        f"the teacher's encoder is {name}, whose layer list shrink does not know; give a teacher with a "
        "ConformerEncoder (Conformer, FastConformer) or a ConvASREncoder (QuartzNet, Jasper, Citrinet)"
    )


def check_size(layers: LayerList, size: int) -> None:
    if size >= layers.count:
        raise ShrinkError(
            f"a student of {size} encoder layers is not smaller than the teacher ({layers.count}); "
            f"give --students below {layers.count}"
        )
    if size < max(layers.smallest, 1):
        raise ShrinkError(
            f"a student of {size} encoder layers is too small for this teacher: it keeps {layers.smallest} of "
            f"its {layers.count} blocks because only blocks with equal input and output widths can go; "
            f"give --students between {max(layers.smallest, 1)} and {layers.count - 1}"
        )


def kept_layers(layers: LayerList, size: int, spread: bool) -> list[int]:
    """The indices of the layers a student of ``size`` keeps. ``spread``: every k-th removable layer
    (DistilHuBERT-style initialization from the teacher); otherwise the first ones, so that a smaller
    student is a prefix of a larger one."""
    check_size(layers, size)
    keep_removable = size - layers.smallest
    candidates = layers.removable
    if spread:
        chosen = [candidates[round((i + 1) * len(candidates) / keep_removable) - 1] for i in range(keep_removable)]
    else:
        chosen = list(candidates[:keep_removable])
    fixed = [index for index in range(layers.count) if index not in layers.removable]
    return sorted(fixed + chosen)


def set_layers_in_config(encoder_cfg: DictConfig, layers: LayerList, kept: list[int]) -> None:
    with open_dict(encoder_cfg):
        if layers.kind == "conformer":
            encoder_cfg.n_layers = len(kept)
        else:
            encoder_cfg.jasper = [encoder_cfg.jasper[index] for index in kept]


def renumbered_state(state: dict, layers: LayerList, kept: list[int]) -> dict:
    """The state dict with layer ``kept[j]`` renamed to layer ``j`` and the other layers left out."""
    new_index = {old: new for new, old in enumerate(kept)}
    out = {}
    for key, value in state.items():
        if not key.startswith(layers.prefix):
            out[key] = value
            continue
        number, rest = key[len(layers.prefix) :].split(".", 1)
        if int(number) in new_index:
            out[f"{layers.prefix}{new_index[int(number)]}.{rest}"] = value
    return out


def derive(nemo_path: str, kept: list[int], copy_weights: bool, map_location: str = "cpu"):
    """The model of ``nemo_path`` with only the ``kept`` encoder layers. ``copy_weights``: those layers,
    the front end and the CTC head keep their weights; otherwise encoder and head start at random."""
    from asr_transfer.nemofile import restore_model

    model = restore_model(nemo_path, "--teacher", map_location=map_location)
    layers = layer_list(model)
    source_state = model.state_dict()
    set_layers_in_config(model.cfg.encoder, layers, kept)
    model.encoder = model.from_config_dict(model.cfg.encoder)
    if copy_weights:
        model.load_state_dict(renumbered_state(source_state, layers, kept), strict=True)
    else:
        model.decoder = model.from_config_dict(model.cfg.decoder)
    return model.to(map_location)


def parameter_count(model) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
