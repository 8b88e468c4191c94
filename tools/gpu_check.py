#!/usr/bin/env python
"""GPU check: the figures a short lease of a GPU machine should bring back, one per line.

In: the repository (recipes/conf, the shipped tiny English base) and a work folder (``--work``; made
and reused). Out: lines ``name: value unit`` on stdout (and the same as JSON with ``--json``):

1. train-step throughput (forward, CTC loss, backward, AdamW) and peak memory of full-size QuartzNet 15x5
   (characters) and FastConformer-CTC large (NeMo's fast-conformer_ctc_bpe.yaml encoder: 18 layers of
   width 512, 8x depthwise-striding subsampling; the shipped English base's 128-piece BPE vocabulary),
   random weights, on noise audio held on the device, in fp32 and in bf16 autocast (what Lightning's
   ``bf16-mixed`` does), with the bf16/fp32 ratio. Peak memory is ``torch.cuda.max_memory_allocated``; on
   a CPU, the process's peak resident memory (which also holds everything before it);
2. a recipe route: a synthetic German Common Voice release (espeak-ng), prepare-cv, a character
   vocabulary, fine-tuning of the shipped English tiny base in ``bf16-mixed`` (32 on a CPU, where the
   project refuses bf16), export to .nemo, restore, transcription of test, and a 4-gram token LM
   (train-lm) decoded with beam search on test (WER of each, and seconds per stage);
3. CTC decoding speed on the device on random peaky log-probs shaped like the exported model's output:
   NeMo's ``greedy_batch`` (an argmax: NeMo 3.0 captures no CUDA graph for plain CTC greedy), its
   ``greedy_batch`` fused with the n-gram LM (the CTC decoder that uses CUDA graphs), and ``beam_batch``
   with the LM, each with CUDA graphs on and off; with the graph mode NeMo chose.

Without CUDA (or with ``--smoke``) the sizes shrink to a smoke test: both full-size models are built (and
counted) but the train steps run on the tiny architecture of each family (bf16 on a CPU without bf16
units takes minutes per full-size step), one utterance of one second per step; a few clips and
fine-tuning steps; small decoding batches. Errors in one part are printed as ``<part>_error: ...`` and
the others still run; the exit status is 1 when any part failed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "recipes" / "conf"
EN_BASE = REPO / "recipes" / "en_base" / "model" / "en_tiny_quartznet_char.nemo"
EN_BPE_BASE = REPO / "recipes" / "en_base" / "model" / "en_tiny_fastconformer_bpe128.nemo"
ENGLISH = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]

# The encoder of NeMo's examples/asr/conf/fastconformer/fast-conformer_ctc_bpe.yaml (large, about 115M
# parameters), applied over the tiny FastConformer architecture file, which has the same structure at width 128.
FASTCONFORMER_LARGE = {
    "encoder.n_layers": 18,
    "encoder.d_model": 512,
    "encoder.n_heads": 8,
    "encoder.subsampling_conv_channels": 256,
    "encoder.conv_kernel_size": 9,
    "encoder.ff_expansion_factor": 4,
    "decoder.feat_in": 512,
}


class Sizes:
    """Batch shapes and step counts: full on a GPU, a smoke test elsewhere."""

    def __init__(self, smoke: bool):
        self.smoke = smoke
        self.batch, self.seconds = (1, 1.0) if smoke else (32, 16.0)  # utterances per step, audio per utterance
        self.warmup, self.steps = (1, 1) if smoke else (3, 10)
        self.clips = 24 if smoke else 200  # synthetic release (about 80 % land in train)
        self.finetune_steps = 2 if smoke else 100
        self.route_batch = 4 if smoke else 32
        self.decode_batch, self.decode_frames = (2, 50) if smoke else (64, 800)
        self.decode_repeats = 1 if smoke else 10
        self.beam_size = 4 if smoke else 8


def emit(results: dict, name: str, value, unit: str = "") -> None:
    """One figure: printed at once as ``name: value unit`` (a lease may end mid-run) and kept for --json."""
    results[name] = value if not unit else {"value": value, "unit": unit}
    print(f"{name}: {value}{' ' + unit if unit else ''}", flush=True)


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_memory_mib(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --- 1. train-step throughput -------------------------------------------------------------------------------


def english_bpe(work: Path) -> str:
    """A folder with the shipped English FastConformer base's 128-piece SentencePiece tokenizer (made once)."""
    import tarfile

    folder = work / "english_bpe128"
    if not (folder / "tokenizer.model").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(EN_BPE_BASE) as archive:
            for member in archive.getmembers():
                for name in ("tokenizer.model", "tokenizer.vocab", "vocab.txt"):
                    if member.name.endswith(f"_{name}"):  # NeMo prefixes each artifact with a hash
                        (folder / name).write_bytes(archive.extractfile(member).read())
    return str(folder)


def full_size_models(work: Path):
    """(name, full-size architecture, tiny architecture of the same family, vocabulary config) of both models."""
    from omegaconf import OmegaConf

    from asr_transfer.training.config import load_arch

    bpe_dir = english_bpe(work)
    char_dir = work / "english_char"
    char_dir.mkdir(parents=True, exist_ok=True)
    (char_dir / "vocab.txt").write_text("".join(f"{label}\n" for label in ENGLISH), encoding="utf-8")
    quartznet = load_arch(str(CONF / "arch" / "quartznet15x5_char.yaml"))
    fastconformer = load_arch(str(CONF / "arch" / "tiny_fastconformer_bpe.yaml"))
    for key, value in FASTCONFORMER_LARGE.items():
        OmegaConf.update(fastconformer, key, value)
    return [
        (
            "quartznet15x5",
            quartznet,
            load_arch(str(CONF / "arch" / "tiny_quartznet_char.yaml")),
            OmegaConf.create({"kind": "char", "dir": str(char_dir)}),
        ),
        (
            "fastconformer_ctc_large",
            fastconformer,
            load_arch(str(CONF / "arch" / "tiny_fastconformer_bpe.yaml")),
            OmegaConf.create({"kind": "bpe", "dir": bpe_dir}),
        ),
    ]


def train_steps(model, batch, dtype, steps: int, warmup: int, device) -> tuple[float, float]:
    """Seconds for ``steps`` timed train steps on one held batch (after ``warmup`` untimed), and peak MiB."""
    import torch

    signal, signal_length, targets, target_length = batch
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            log_probs, encoded_length, _ = model(input_signal=signal, input_signal_length=signal_length)
        loss = model.loss(
            log_probs=log_probs.float(), targets=targets, input_lengths=encoded_length, target_lengths=target_length
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    for _ in range(warmup):
        step()
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    seconds = time.perf_counter() - started
    return seconds, peak_memory_mib(device)


def throughput(results: dict, sizes: Sizes, device, work: Path) -> None:
    import torch

    from asr_transfer.training.models import build_model

    for name, arch, tiny_arch, vocab in full_size_models(work):
        model = build_model(arch, vocab).to(device)
        emit(results, f"{name}_parameters", round(sum(p.numel() for p in model.parameters()) / 1e6, 1), "M")
        if sizes.smoke:  # the full-size model is built (its config checked); a CPU steps a tiny one of its family
            arch, model = tiny_arch, build_model(tiny_arch, vocab).to(device)
            emit(results, f"{name}_smoke_stand_in", f"tiny, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M")
        rate = int(arch.sample_rate)
        samples = int(sizes.seconds * rate)
        generator = torch.Generator().manual_seed(0)
        signal = (0.1 * torch.randn(sizes.batch, samples, generator=generator)).to(device)
        signal_length = torch.full((sizes.batch,), samples, dtype=torch.long, device=device)
        with torch.no_grad():
            model.eval()
            _, encoded_length, _ = model(input_signal=signal[:1], input_signal_length=signal_length[:1])
        target_len = max(1, int(encoded_length[0]) // 4)  # well inside what CTC can align
        classes = model.decoder.num_classes_with_blank - 1
        targets = torch.randint(0, classes, (sizes.batch, target_len), generator=generator).to(device)
        target_length = torch.full((sizes.batch,), target_len, dtype=torch.long, device=device)
        batch = (signal, signal_length, targets, target_length)
        speeds = {}
        for precision, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            seconds, peak = train_steps(model, batch, dtype, sizes.steps, sizes.warmup, device)
            utterances = sizes.batch * sizes.steps
            speeds[precision] = utterances / seconds
            emit(results, f"{name}_{precision}_train_utt_per_s", round(speeds[precision], 2), "utt/s")
            emit(results, f"{name}_{precision}_train_audio_s_per_s", round(speeds[precision] * sizes.seconds, 1), "s/s")
            emit(results, f"{name}_{precision}_peak_memory", round(peak), "MiB")
        emit(results, f"{name}_bf16_vs_fp32_speedup", round(speeds["bf16"] / speeds["fp32"], 2), "x")
        del model, batch, signal, targets
        if device.type == "cuda":
            torch.cuda.empty_cache()


# --- 2. the recipe route ----------------------------------------------------------------------------------


def synthetic_data(work: Path, sizes: Sizes) -> dict:
    """A synthetic German release, prepared, with its character vocabulary (each made once)."""
    from asr_transfer.layout import summary_path
    from asr_transfer.manifests.pipeline import BuildOptions
    from asr_transfer.manifests.prepare_cv import prepare_common_voice
    from asr_transfer.synth.synth_cv import synth_cv
    from asr_transfer.tokenizers.train import train_tokenizer

    root = work / f"cv_de_{sizes.clips}"
    locale = root / "cv-corpus-17.0-2024-03-15" / "de"
    if not (locale / "faults.json").exists():
        synth_cv("de", sizes.clips, str(root), seed=5, progress=False, jobs=os.cpu_count() or 1)
    data = work / f"prepared_de_{sizes.clips}"
    if not summary_path(data).is_file():
        prepare_common_voice(str(root), str(data), "de", BuildOptions(progress=False, jobs=os.cpu_count() or 1))
    tokenizers = work / f"tokenizers_{sizes.clips}"
    train = str(data / "train.json")
    return {
        "train": train,
        "dev": str(data / "dev.json"),
        "test": str(data / "test.json"),
        "char": str(train_tokenizer([train], "de", "char", tokenizers)),
    }


def manifest_entries(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def word_error_rate(model, entries: list[dict]) -> float:
    import jiwer

    from asr_transfer.inference.model import transcribe_paths

    hypotheses = transcribe_paths(model, [entry["audio_filepath"] for entry in entries])
    return jiwer.wer([entry["text"] for entry in entries], [hypothesis or "-" for hypothesis in hypotheses])


def route(results: dict, sizes: Sizes, device, work: Path, data: dict) -> str:
    """Fine-tune (bf16-mixed on a GPU) -> export -> restore -> transcribe; then train-lm and beam+LM decoding.
    Returns the exported .nemo; leaves the LM beside it."""
    from asr_transfer.inference.export import export
    from asr_transfer.inference.model import Decoding, load_model, set_decoding
    from asr_transfer.lm.train import train_lm
    from asr_transfer.training.run import RunPlan, load_plan, run_finetune

    precision = "bf16-mixed" if device.type == "cuda" else "32"
    exp = work / f"route_{int(time.time())}"
    plan = RunPlan(
        config=str(CONF / "tiny_quartznet_char.yaml"),
        exp_dir=str(exp),
        steps=sizes.finetune_steps,
        val_every=sizes.finetune_steps,
        progress_bar=False,
        overrides=(
            "lang=de",
            f"init.nemo={EN_BASE}",
            f"vocab.dir={data['char']}",
            f"data.train_manifest={data['train']}",
            f"data.dev_manifest={data['dev']}",
            f"trainer.precision={precision}",
            f"data.batch_size={sizes.route_batch}",
        ),
    )
    cfg = load_plan(plan)
    emit(results, "route_precision", str(cfg.trainer.precision))
    started = time.perf_counter()
    run_dir = run_finetune(plan).run_dir
    seconds = time.perf_counter() - started
    emit(results, "route_finetune_time", round(seconds, 1), "s")
    emit(results, "route_finetune_steps_per_s", round(sizes.finetune_steps / seconds, 2), "steps/s")
    exported = str(work / "route_de.nemo")
    started = time.perf_counter()
    export(str(run_dir), exported)
    emit(results, "route_export_time", round(time.perf_counter() - started, 1), "s")
    started = time.perf_counter()
    model = load_model(exported, device.type)
    emit(results, "route_restore_time", round(time.perf_counter() - started, 1), "s")
    test = manifest_entries(data["test"])
    started = time.perf_counter()
    emit(results, "route_test_wer_greedy", round(word_error_rate(model, test), 3))
    emit(results, "route_transcribe_time", round(time.perf_counter() - started, 1), "s")
    lm = str(work / "route_de_4gram.arpa")
    started = time.perf_counter()
    train_lm(exported, lm, order=4, manifests=[data["train"]], lang="de")
    emit(results, "route_train_lm_time", round(time.perf_counter() - started, 1), "s")
    set_decoding(model, Decoding("beam", sizes.beam_size, lm, 0.5, 0.0), model_path=exported)
    started = time.perf_counter()
    emit(results, "route_test_wer_beam_lm", round(word_error_rate(model, test), 3))
    emit(results, "route_beam_lm_transcribe_time", round(time.perf_counter() - started, 1), "s")
    return exported


# --- 3. decoding speed ------------------------------------------------------------------------------------


def decoding_speed(results: dict, sizes: Sizes, device, exported: str) -> None:
    """Decoder time alone, on the device, for batches of peaky random log-probs of the exported model's size."""
    import torch
    from omegaconf import open_dict

    from asr_transfer.inference.model import load_model

    model = load_model(exported, device.type)
    lm = str(Path(exported).parent / "route_de_4gram.arpa")
    classes = model.decoder.num_classes_with_blank
    generator = torch.Generator().manual_seed(1)
    logits = 6.0 * torch.randn(sizes.decode_batch, sizes.decode_frames, classes, generator=generator)
    log_probs = torch.log_softmax(logits, dim=-1).to(device)
    lengths = torch.full((sizes.decode_batch,), sizes.decode_frames, dtype=torch.long, device=device)
    rate = int(model.cfg.sample_rate)
    with torch.inference_mode():  # output frames per second of audio, whatever the model's subsampling
        second = torch.zeros(1, rate, device=device)
        _, frames, _ = model(input_signal=second, input_signal_length=torch.tensor([rate], device=device))
    audio_seconds = sizes.decode_batch * sizes.decode_frames / float(frames[0])
    emit(results, "decode_batch", f"{sizes.decode_batch}x{sizes.decode_frames} frames, {classes} classes")

    cases = [
        ("greedy_batch", "greedy_batch", {}, True),
        ("greedy_batch_lm_cuda_graphs", "greedy_batch", {"ngram_lm_model": lm, "ngram_lm_alpha": 0.5}, True),
        ("greedy_batch_lm_no_graphs", "greedy_batch", {"ngram_lm_model": lm, "ngram_lm_alpha": 0.5}, False),
        ("beam_batch_lm_cuda_graphs", "beam_batch", {"ngram_lm_model": lm, "ngram_lm_alpha": 0.5}, True),
        ("beam_batch_lm_no_graphs", "beam_batch", {"ngram_lm_model": lm, "ngram_lm_alpha": 0.5}, False),
    ]
    for name, strategy, extra, graphs in cases:
        config = model.cfg.decoding
        with open_dict(config):
            config.strategy = strategy
            section = config.greedy if strategy == "greedy_batch" else config.beam
            for key in ("ngram_lm_model", "ngram_lm_alpha"):
                section[key] = extra.get(key, None if key == "ngram_lm_model" else 0.0)
            section.allow_cuda_graphs = graphs
            if strategy == "beam_batch":
                config.beam.beam_size = sizes.beam_size
                config.beam.return_best_hypothesis = True
        model.change_decoding_strategy(config, verbose=False)

        def decode():
            with torch.inference_mode():
                model.decoding.ctc_decoder_predictions_tensor(log_probs, decoder_lengths=lengths)

        decode()  # first call: LM to the device, CUDA graph capture
        synchronize(device)
        started = time.perf_counter()
        for _ in range(sizes.decode_repeats):
            decode()
        synchronize(device)
        seconds = (time.perf_counter() - started) / sizes.decode_repeats
        emit(results, f"{name}_time", round(seconds * 1000, 2), "ms/batch")
        emit(results, f"{name}_rtfx", round(audio_seconds / seconds), "audio s/s")
        decoder = model.decoding.decoding
        decoder = getattr(decoder, "search_algorithm", decoder)  # beam_batch keeps its graphs in its computer
        mode = getattr(decoder, "cuda_graphs_mode", None)
        emit(results, f"{name}_graph_mode", str(getattr(mode, "value", mode)))


# --- main -------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (the default without CUDA)")
    parser.add_argument("--work", default="/tmp/gpu_check", help="work folder, reused (default /tmp/gpu_check)")
    parser.add_argument("--json", help="also write the figures as JSON here")
    parser.add_argument(
        "--parts", default="throughput,route,decode", help="comma-separated subset of throughput,route,decode"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import logging

    import torch

    logging.raiseExceptions = False
    cuda = torch.cuda.is_available()
    sizes = Sizes(args.smoke or not cuda)
    device = torch.device("cuda" if cuda else "cpu")
    parts = set(args.parts.split(","))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    started = time.perf_counter()
    emit(results, "device", torch.cuda.get_device_name() if cuda else "cpu")
    emit(results, "mode", "smoke" if sizes.smoke else "full")
    if sizes.smoke:  # asked for, or the only choice: a GPU run that printed "smoke" says which
        emit(results, "smoke_because", "--smoke" if args.smoke else "no CUDA")
    emit(results, "torch", f"{torch.__version__} (CUDA {torch.version.cuda or 'none'})")
    from importlib import metadata

    import nemo

    emit(results, "nemo", nemo.__version__)
    versions = []  # the machine's own packages may differ from this project's pins: say which ran
    for package in ("lightning", "numpy", "transformers", "huggingface_hub", "lhotse", "triton", "cuda-bindings"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} absent")
    emit(results, "versions", ", ".join(versions))
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed shapes here: let cuDNN pick its fastest kernels
        # fp32 as torch leaves it by default (convolutions may use TF32; matrix products as below)
        emit(results, "fp32_matmul_allows_tf32", bool(torch.backends.cuda.matmul.allow_tf32))
    failed = []

    def attempt(part: str, function, *arguments):
        part_started = time.perf_counter()
        try:
            value = function(*arguments)
        except Exception as error:  # one broken part must not hide the others' figures
            traceback.print_exc(file=sys.stderr)
            first_line = str(error).splitlines()[0] if str(error) else ""
            emit(results, f"{part}_error", f"{type(error).__name__}: {first_line}")
            failed.append(part)
            return None
        emit(results, f"{part}_wall_time", round(time.perf_counter() - part_started, 1), "s")
        return value

    if "throughput" in parts:
        attempt("throughput", throughput, results, sizes, device, work)
    exported = None
    if "route" in parts or "decode" in parts:
        data = attempt("data", synthetic_data, work, sizes)
        exported = attempt("route", route, results, sizes, device, work, data) if data else None
    if "decode" in parts and exported:
        attempt("decode", decoding_speed, results, sizes, device, exported)
    emit(results, "total_wall_time", round(time.perf_counter() - started, 1), "s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    from asr_transfer.errors import run_tool

    sys.exit(run_tool(main))
