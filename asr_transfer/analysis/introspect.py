"""Per-layer weight change between a base model and a model fine-tuned from it (Kunze et al. 2017).

In: two ``.nemo`` files (or two loaded NeMo models) of the same architecture. Out: one row per layer
with parameters (the preprocessor excluded), in the model's own layer order: the relative change
``||W_tuned - W_base|| / ||W_base||`` and the cosine similarity of the flattened weights. Printed as a
table; ``--csv`` and ``--json`` write the rows, ``--plot`` draws them as bar charts.

A layer is a module that holds parameters directly (a convolution, a BatchNorm, the output layer);
its weight and bias are compared together. When the output layer's shape differs because the
vocabulary was swapped, only the rows of tokens that both vocabularies hold (and the CTC blank) are
compared, and the row says how many.

``asr-transfer inspect --base BASE.nemo --tuned TUNED.nemo [--plot out.png] [--csv rows.csv]``
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
from dataclasses import asdict, dataclass

import torch

from asr_transfer.fileio import atomic_open
from asr_transfer.plotting import saved_figure

EXCLUDED_PREFIXES = ("preprocessor", "spec_augmentation", "spec_augment")


@dataclass
class LayerChange:
    layer: str
    parameters: int
    relative_change: float
    cosine: float
    note: str = ""


def parameter_layers(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Modules that own parameters themselves, in registration order (the forward order for NeMo)."""
    layers = {}
    for name, module in model.named_modules():
        if not name or name.startswith(EXCLUDED_PREFIXES):
            continue
        if any(True for _ in module.parameters(recurse=False)):
            layers[name] = module
    return layers


def _flatten(module: torch.nn.Module, rows: list[int] | None = None) -> torch.Tensor:
    pieces = []
    for _, parameter in sorted(module.named_parameters(recurse=False)):
        tensor = parameter.detach().float().cpu()
        if rows is not None:
            tensor = tensor[rows]
        pieces.append(tensor.reshape(-1))
    return torch.cat(pieces)


def vocabulary(model) -> list[str] | None:
    decoder = getattr(model, "decoder", None)
    tokens = getattr(decoder, "vocabulary", None)
    if tokens is None:
        return None
    return [str(token) for token in tokens]


def shared_rows(base_tokens: list[str], tuned_tokens: list[str]) -> tuple[list[int], list[int]]:
    """Row indices (base, tuned) of tokens both vocabularies hold, plus the CTC blank (the last row)."""
    tuned_index = {token: index for index, token in enumerate(tuned_tokens)}
    pairs = [(index, tuned_index[token]) for index, token in enumerate(base_tokens) if token in tuned_index]
    pairs.append((len(base_tokens), len(tuned_tokens)))
    return [base for base, _ in pairs], [tuned for _, tuned in pairs]


def compare_vectors(base: torch.Tensor, tuned: torch.Tensor) -> tuple[float, float]:
    base_norm = float(base.norm())
    change = float((tuned - base).norm())
    relative = change / base_norm if base_norm > 0 else (0.0 if change == 0 else math.inf)
    denominator = base_norm * float(tuned.norm())
    cosine = float(torch.dot(base, tuned)) / denominator if denominator > 0 else float("nan")
    return relative, cosine


def _same_shapes(base_layer: torch.nn.Module, tuned_layer: torch.nn.Module) -> bool:
    base_shapes = [tuple(p.shape) for _, p in sorted(base_layer.named_parameters(recurse=False))]
    tuned_shapes = [tuple(p.shape) for _, p in sorted(tuned_layer.named_parameters(recurse=False))]
    return base_shapes == tuned_shapes


def layer_changes(base_model, tuned_model) -> list[LayerChange]:
    base_layers, tuned_layers = parameter_layers(base_model), parameter_layers(tuned_model)
    base_tokens, tuned_tokens = vocabulary(base_model), vocabulary(tuned_model)
    changes = []
    for name, base_layer in base_layers.items():
        tuned_layer = tuned_layers.get(name)
        if tuned_layer is None:
            changes.append(LayerChange(name, 0, math.nan, math.nan, "missing in the tuned model"))
            continue
        note, base_rows, tuned_rows = "", None, None
        if not _same_shapes(base_layer, tuned_layer):
            rows_differ = base_tokens is not None and tuned_tokens is not None and name.startswith("decoder")
            if not rows_differ:
                changes.append(LayerChange(name, 0, math.nan, math.nan, "shapes differ"))
                continue
            base_rows, tuned_rows = shared_rows(base_tokens, tuned_tokens)
            note = f"{len(base_rows) - 1} shared tokens + blank of {len(tuned_tokens)} + blank"
        base_vector = _flatten(base_layer, base_rows)
        tuned_vector = _flatten(tuned_layer, tuned_rows)
        relative, cosine = compare_vectors(base_vector, tuned_vector)
        changes.append(LayerChange(name, base_vector.numel(), relative, cosine, note))
    return changes


def short_name(layer: str) -> str:
    return layer.replace("encoder.encoder.", "enc.").replace("decoder.decoder_layers.", "dec.")


def block_of(layer: str) -> str:
    """The encoder block (``enc.3``) or top-level part (``decoder``) a layer belongs to."""
    parts = layer.split(".")
    if parts[:2] == ["encoder", "encoder"] and len(parts) > 2:
        return f"enc.{parts[2]}"
    if parts[:2] == ["encoder", "layers"] and len(parts) > 2:  # Conformer
        return f"enc.{parts[2]}"
    return parts[0]


def block_means(changes: list[LayerChange]) -> dict[str, float]:
    """Parameter-weighted mean relative change per block, in layer order."""
    sums: dict[str, list[float]] = {}
    for change in changes:
        if math.isfinite(change.relative_change):
            total = sums.setdefault(block_of(change.layer), [0.0, 0.0])
            total[0] += change.relative_change * change.parameters
            total[1] += change.parameters
    return {block: weighted / count for block, (weighted, count) in sums.items() if count}


def describe(changes: list[LayerChange]) -> str:
    """One sentence on which layers moved most, for reports."""
    means = block_means(changes)
    if not means:
        return "No comparable layers."
    most = max(means, key=means.get)
    least = min(means, key=means.get)
    finite = [c for c in changes if math.isfinite(c.relative_change)]
    top = max(finite, key=lambda c: c.relative_change)
    return (
        f"Relative weight change per block ranges from {means[least]:.3f} ({least}) to {means[most]:.3f} "
        f"({most}); the layer that moved most is {short_name(top.layer)} ({top.relative_change:.3f}, "
        f"cosine {top.cosine:.3f})."
    )


def format_table(changes: list[LayerChange]) -> str:
    width = max([len(short_name(change.layer)) for change in changes] + [5])
    lines = [f"{'layer':<{width}}  {'params':>9}  {'rel.change':>10}  {'cosine':>7}  note"]
    for change in changes:
        lines.append(
            f"{short_name(change.layer):<{width}}  {change.parameters:>9}  {change.relative_change:>10.4f}  "
            f"{change.cosine:>7.4f}  {change.note}"
        )
    return "\n".join(lines)


def write_csv(changes: list[LayerChange], path: str) -> None:
    with atomic_open(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=list(LayerChange.__dataclass_fields__), lineterminator="\n")
        writer.writeheader()
        for change in changes:
            writer.writerow(asdict(change))


def plot_changes(changes: list[LayerChange], out_png: str, title: str = "weight change per layer") -> None:
    from matplotlib import colormaps

    shown = [change for change in changes if math.isfinite(change.relative_change)]
    labels = [short_name(change.layer) for change in shown]
    blocks = [block_of(change.layer) for change in shown]
    palette = colormaps["tab10"]
    block_colors = {block: palette(index % 10) for index, block in enumerate(dict.fromkeys(blocks))}
    colors = [block_colors[block] for block in blocks]
    size = (max(7, 0.22 * len(shown) + 2), 6.5)
    with saved_figure(out_png, nrows=2, ncols=1, figsize=size, sharex=True) as (_, (top, bottom)):
        positions = range(len(shown))
        top.bar(positions, [change.relative_change for change in shown], color=colors)
        top.set_ylabel("||W_tuned - W_base|| / ||W_base||")
        top.set_title(title)
        top.grid(axis="y", alpha=0.3)
        bottom.bar(positions, [change.cosine for change in shown], color=colors)
        bottom.set_ylabel("cosine similarity")
        bottom.set_ylim(min(0.0, min((change.cosine for change in shown), default=0.0)), 1.02)
        bottom.grid(axis="y", alpha=0.3)
        bottom.set_xticks(list(positions))
        bottom.set_xticklabels(labels, rotation=90, fontsize=6)


def inspect_files(base_path: str, tuned_path: str) -> list[LayerChange]:
    from asr_transfer.inference.model import load_model

    return layer_changes(load_model(base_path, "cpu", named="--base"), load_model(tuned_path, "cpu", named="--tuned"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transfer inspect",
        description="Per-layer relative weight change and cosine similarity between a base model and a model "
        "fine-tuned from it (Kunze et al. 2017), in layer order; the preprocessor is left out.",
    )
    parser.add_argument("--base", required=True, help="the base .nemo")
    parser.add_argument("--tuned", required=True, help="the fine-tuned .nemo")
    parser.add_argument("--plot", help="PNG: bar charts of relative change and cosine per layer")
    parser.add_argument("--csv", help="write the rows as CSV")
    parser.add_argument("--json", help="write the rows and the per-block means as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    changes = inspect_files(args.base, args.tuned)
    print(format_table(changes))
    print(describe(changes))
    if args.csv:
        write_csv(changes, args.csv)
    if args.json:
        with atomic_open(args.json) as handle:
            json.dump({"layers": [asdict(c) for c in changes], "blocks": block_means(changes)}, handle, indent=2)
    if args.plot:
        plot_changes(changes, args.plot, f"{os.path.basename(args.tuned)} against {os.path.basename(args.base)}")
        print(f"wrote {args.plot}")
    return 0
