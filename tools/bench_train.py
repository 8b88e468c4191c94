#!/usr/bin/env python
"""Training throughput benchmark: which side bounds training, the data loader or the model, and bf16 vs fp32.

In: a synthetic German Common Voice release (``benchlib.synthetic_release``, reused from ``--work``),
prepared once into per-clip WAV manifests and into Lhotse Shar shards. Out: a table on stdout (and
``--json``) of utterances and audio seconds per second, with peak memory, for

1. the data loader alone: the manifest + WAV files with each ``--workers`` count, and the Shar shards;
2. training steps (forward, CTC loss, backward, AdamW) on real batches held in memory: the model alone,
   once per precision (fp32, and bf16 autocast as Lightning's ``bf16-mixed`` does it);
3. both together: the loader feeding training steps, at the recipe's own ``data.num_workers``;

for the tiny config always and, with a GPU, full-size QuartzNet 15x5 and Conformer-CTC (random weights:
speed does not depend on them). It prints, per model and precision, the bound (the slower of the loader
at the recipe's workers and the model alone) and the bf16/fp32 ratio of the model alone. Peak memory is
CUDA's peak allocation on a GPU; on a CPU, the proportional set size (shared pages split between
sharers, so forked loader workers are not counted twice) of this process and its loader workers at the
end of each case (reading /proc inside the timed loop would slow what it measures).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import sys
import time
from pathlib import Path

import torch
from benchlib import REPO, synthetic_release, tree_pss_bytes
from omegaconf import OmegaConf, open_dict

from asr_transfer.layout import summary_path, vocab_dir
from asr_transfer.manifests.audio import model_sample_rate
from asr_transfer.manifests.pipeline import BuildOptions
from asr_transfer.manifests.prepare_cv import prepare_common_voice
from asr_transfer.manifests.shar import ShardOptions
from asr_transfer.manifests.shard_manifest import shard_manifest
from asr_transfer.tokenizers.train import train_tokenizer
from asr_transfer.training.config import load_config
from asr_transfer.training.data import dataset_config
from asr_transfer.training.finetune import scratch_model_config
from asr_transfer.training.models import build_model

CONF = REPO / "recipes" / "conf"
CPU_MODELS = ("tiny_quartznet_char",)
GPU_MODELS = ("tiny_quartznet_char", "quartznet15x5_char", "conformer_ctc_bpe")
PRECISIONS = {"fp32": None, "bf16-mixed": torch.bfloat16}


def prepared_data(work: Path, clips: int) -> dict:
    """WAV manifests, Shar shards and vocabularies of the synthetic release (each made once)."""
    locale = synthetic_release(work, clips)
    data = work / f"prepared_de_{clips}"
    if not summary_path(data).is_file():
        prepare_common_voice(str(locale.parent.parent), str(data), "de", BuildOptions(progress=False))
    shards = work / f"shar_de_{clips}"
    if not summary_path(shards).is_file():
        shard_manifest(str(data / "train.json"), str(shards), ShardOptions(shards=4), jobs=os.cpu_count() or 1)
    tokenizers = work / "tokenizers"
    char, bpe = vocab_dir(tokenizers, "de", "char"), vocab_dir(tokenizers, "de", "bpe", 128)
    if not (char / "vocab.txt").is_file():
        train_tokenizer([str(data / "train.json")], "de", "char", tokenizers)
    if not (bpe / "tokenizer.model").is_file():
        train_tokenizer([str(data / "train.json")], "de", "bpe", tokenizers, vocab_size=128)
    return {"train": str(data / "train.json"), "shar": str(shards), "char": str(char), "bpe": str(bpe)}


def make_model(name: str, data: dict, device: torch.device):
    cfg = load_config(str(CONF / f"{name}.yaml"), ["vocab.dir=unused"])
    kind = "char" if name.endswith("_char") else "bpe"
    vocab = OmegaConf.create({"kind": kind, "dir": data[kind]})
    model = build_model(scratch_model_config(cfg), vocab).to(device)
    return model, cfg


def loader(model, cfg, data: dict, workers: int, shar: bool):
    data_cfg = OmegaConf.create(OmegaConf.to_container(cfg.data))
    with open_dict(data_cfg):
        data_cfg.num_workers = workers
        data_cfg.shar_path = data["shar"] if shar else None
        data_cfg.check_lengths = False
    model.setup_training_data(dataset_config(model, None if shar else data["train"], data_cfg, train=True))
    return model._train_dl


def endless(dataloader):
    while True:
        yield from dataloader


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return tree_pss_bytes(os.getpid()) / 2**20


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def rates(utterances: int, audio_seconds: float, seconds: float, memory: float) -> dict:
    return {
        "utt_per_s": round(utterances / seconds, 2),
        "audio_s_per_s": round(audio_seconds / seconds, 1),
        "peak_mib": round(memory),
    }


def release_loader(model) -> None:
    """Drop the model's loader so that its worker processes exit before the next case is measured."""
    model._train_dl = None
    gc.collect()


def measure_loader(dataloader, batches: int, sample_rate: int) -> dict:
    """Steady-state loading: untimed, one batch from every worker first (start-up, and Lhotse filling each
    worker's shuffle buffer, are paid once per run, not per batch)."""
    stream = endless(dataloader)
    for _ in range(max(1, dataloader.num_workers)):
        next(stream)
    utterances, audio = 0, 0.0
    started = time.perf_counter()  # wall time: workers load while the main process waits or works
    for batch in itertools.islice(stream, batches):
        utterances += int(batch[1].numel())
        audio += float(batch[1].sum()) / sample_rate
    seconds = time.perf_counter() - started
    return rates(utterances, audio, seconds, tree_pss_bytes(os.getpid()) / 2**20)  # read after: /proc is slow


def training_step(model, optimizer, batch, dtype) -> None:
    signal, signal_length, tokens, token_length = batch
    with torch.autocast(signal.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        log_probs, encoded_length, _ = model(input_signal=signal, input_signal_length=signal_length)
    loss = model.loss(
        log_probs=log_probs.float(), targets=tokens, input_lengths=encoded_length, target_lengths=token_length
    )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def measure_training(model, batches, steps: int, dtype, device: torch.device, sample_rate: int) -> dict:
    """Timed training steps over ``batches`` (an iterator); two untimed warm-up steps first."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for batch in itertools.islice(batches, 2):
        training_step(model, optimizer, [tensor.to(device) for tensor in batch], dtype)
    reset_peak(device)
    utterances, audio = 0, 0.0
    started = time.perf_counter()
    for batch in itertools.islice(batches, steps):
        batch = [tensor.to(device, non_blocking=True) for tensor in batch]
        training_step(model, optimizer, batch, dtype)
        utterances += int(batch[1].numel())
        audio += float(batch[1].sum()) / sample_rate
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return rates(utterances, audio, seconds, peak_memory_mib(device))  # on a CPU: what is resident at the end


def bench_model(name: str, data: dict, args, device: torch.device) -> dict:
    model, cfg = make_model(name, data, device)
    sample_rate = model_sample_rate(model)
    recipe_workers = int(cfg.data.num_workers)
    result: dict = {"model": name, "parameters": sum(p.numel() for p in model.parameters()), "loader": {}}
    result["batch_size"] = int(cfg.data.batch_size)
    result["recipe_workers"] = recipe_workers
    for shar, workers in itertools.product((False, True), sorted({*args.workers, recipe_workers})):
        speeds = measure_loader(loader(model, cfg, data, workers, shar=shar), args.loader_batches, sample_rate)
        result["loader"][f"{'shar' if shar else 'wav'}_{workers}w"] = speeds
        release_loader(model)
    held = list(itertools.islice(endless(loader(model, cfg, data, 0, shar=False)), 4))
    release_loader(model)
    result["model_alone"], result["together"] = {}, {}
    for precision in args.precisions:
        dtype = PRECISIONS[precision]
        in_memory = itertools.cycle([[tensor.to(device) for tensor in batch] for batch in held])
        result["model_alone"][precision] = measure_training(model, in_memory, args.steps, dtype, device, sample_rate)
        stream = endless(loader(model, cfg, data, recipe_workers, shar=False))
        result["together"][precision] = measure_training(model, stream, args.steps, dtype, device, sample_rate)
        del stream
        release_loader(model)
    recipe_loader = result["loader"][f"wav_{recipe_workers}w"]["utt_per_s"]
    result["bound"] = {
        precision: "loader" if recipe_loader < speeds["utt_per_s"] else "model"
        for precision, speeds in result["model_alone"].items()
    }
    if {"fp32", "bf16-mixed"} <= set(result["model_alone"]):
        alone = result["model_alone"]
        result["bf16_vs_fp32"] = round(alone["bf16-mixed"]["utt_per_s"] / alone["fp32"]["utt_per_s"], 2)
    return result


def print_result(result: dict) -> None:
    print(
        f"\n{result['model']} ({result['parameters'] / 1e6:.2f}M parameters, batch {result['batch_size']}, "
        f"recipe workers {result['recipe_workers']})"
    )
    print(f"  {'case':<30}{'utt/s':>10}{'audio s/s':>12}{'peak MiB':>10}")
    rows = [(f"loader {name}", speeds) for name, speeds in result["loader"].items()]
    rows += [(f"model alone {precision}", speeds) for precision, speeds in result["model_alone"].items()]
    rows += [(f"loader + model {precision}", speeds) for precision, speeds in result["together"].items()]
    for name, speeds in rows:
        print(f"  {name:<30}{speeds['utt_per_s']:>10.1f}{speeds['audio_s_per_s']:>12.1f}{speeds['peak_mib']:>10}")
    for precision, bound in result["bound"].items():
        print(f"  bound at {precision}: {bound}")
    if "bf16_vs_fp32" in result:
        print(f"  bf16-mixed / fp32 (model alone): {result['bf16_vs_fp32']:.2f}x")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=400, help="clips in the synthetic corpus (default 400)")
    parser.add_argument("--work", default=str(REPO / "bench_out"), help="corpus, data and tokenizer cache")
    parser.add_argument(
        "--models",
        nargs="+",
        help=f"configs of recipes/conf (default: {', '.join(CPU_MODELS)}; with a GPU {', '.join(GPU_MODELS)})",
    )
    parser.add_argument("--precisions", nargs="+", choices=sorted(PRECISIONS), default=["fp32", "bf16-mixed"])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="loader workers to try (default 0 2)")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per case (default 10)")
    parser.add_argument(
        "--loader-batches",
        type=int,
        default=50,
        help="timed loader batches per case (default 50; far more than the 2 per worker a loader prefetches)",
    )
    parser.add_argument("--json", help="also write the results here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    models = args.models or (GPU_MODELS if device.type == "cuda" else CPU_MODELS)
    data = prepared_data(Path(args.work), args.clips)
    torch.manual_seed(0)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; {args.clips}-clip synthetic German corpus")
    results = {"device": name, "clips": args.clips, "models": []}
    for model_name in models:
        result = bench_model(model_name, data, args, device)
        print_result(result)
        results["models"].append(result)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    from asr_transfer.errors import run_tool

    sys.exit(run_tool(main))
