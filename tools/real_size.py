#!/usr/bin/env python
"""Real-size route: every base family at its published size, random weights, through the product's route.

In: the families to run (``--families``, default all of :data:`FAMILIES`), a work folder (``--work``; the
synthetic data and tokenizers are made once there and reused) and an output folder (``--out``). Per family
and route: a model of the published architecture (``recipes/conf/arch/``) with random weights and a
vocabulary of the published size (characters: English 28 labels, or 5207 Han labels for the Mandarin
Citrinets; SentencePiece BPE: a tokenizer of the published size trained on English text, see
:func:`english_text`) is saved as ``.nemo``; then, each in its own process, as a user runs it:
``asr-transfer finetune`` with ``init.nemo=`` that file, a German target vocabulary and
``trainer.max_steps=2`` on a few short synthetic German clips (espeak-ng), ``asr-transfer export``, and
stock NeMo's ``ASRModel.restore_from`` of the export with ``transcribe`` of one clip.

Out: ``OUT/results.json`` and ``OUT/RESULTS.md``: per row the parameters (built model and fine-tuned
CTC model), the base ``.nemo`` size (MB), wall seconds of each stage, seconds per training step (the run's
``throughput.json``: training batches only, restore and validation excluded), peak resident memory of
each stage's process (``ru_maxrss`` of that child, GiB), the exported ``.nemo`` size and the transcript;
with the command, date, machine, and NeMo/torch versions. A family that fails records its error and the
others still run; a run of some families replaces their rows in an existing ``results.json`` and keeps
the others. Run it pinned to one core, one thread (the numbers in the README were measured so):
``taskset -c 1 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python tools/real_size.py``.

``--activations`` instead measures the bytes autograd saves per layer of Parakeet-CTC 1.1B's encoder in a
bf16-autocast forward (:func:`activation_figures`) into ``OUT/activations.json``: the activation term of
the README's one-GPU memory arithmetic.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "recipes" / "conf"
ARCH = CONF / "arch"
ENGLISH = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]
HAN_LABELS = 5207  # stt_zh_citrinet_512 / _1024_gamma_0_25 vocabulary (asr_transfer/bases.yaml)
# The Citrinets' 8x subsampling gives 12.5 frames per second, fewer than German speech has characters
# (finetune leaves out every such utterance, as CTC needs a frame per label): they take German BPE.
GERMAN_BPE = 64  # target SentencePiece size: what the few synthetic German sentences support comfortably


@dataclass(frozen=True)
class Family:
    arch: str  # file of recipes/conf/arch/
    base: str  # the catalog base (asr_transfer/bases.yaml) whose architecture this is
    published: str  # parameters as the model card / NeMo config states them
    vocab: tuple[str, int]  # base vocabulary: kind and published size
    routes: tuple[tuple[str, str], ...]  # (route name, finetune config of recipes/conf/)
    hybrid: bool = False  # built as NeMo's hybrid RNNT-CTC class; fine-tuning continues as CTC


FAMILIES = {
    "quartznet15x5": Family(
        "quartznet15x5_char.yaml",
        "stt_en_quartznet15x5",
        "18.9M",
        ("char", 28),
        (("char->char", "quartznet15x5_char.yaml"), ("char->bpe", "quartznet15x5_char.yaml")),
    ),
    "citrinet512": Family(
        "citrinet_zh_char.yaml",
        "stt_zh_citrinet_512",
        "36.5M",
        ("char", HAN_LABELS),
        (("char->bpe", "citrinet_zh_char.yaml"),),
    ),
    "citrinet1024": Family(
        "citrinet1024_zh_char.yaml",
        "stt_zh_citrinet_1024_gamma_0_25",
        "140M",
        ("char", HAN_LABELS),
        (("char->bpe", "citrinet_zh_char.yaml"),),
    ),
    "conformer_ctc_small": Family(
        "conformer_ctc_bpe.yaml",
        "stt_en_conformer_ctc_small",
        "13.2M",
        ("bpe", 128),
        (("bpe->bpe", "conformer_ctc_bpe.yaml"),),
    ),
    "conformer_ctc_large": Family(
        "conformer_ctc_large_bpe.yaml",
        "stt_en_conformer_ctc_large",
        "121M",
        ("bpe", 128),
        (("bpe->bpe", "conformer_ctc_bpe.yaml"),),
    ),
    "fastconformer_ctc_large": Family(
        "fastconformer_ctc_large_bpe.yaml",
        "stt_en_fastconformer_ctc_large",
        "115M",
        ("bpe", 1024),
        (("bpe->bpe", "conformer_ctc_bpe.yaml"),),
    ),
    "fastconformer_hybrid_large": Family(
        "fastconformer_hybrid_large_bpe.yaml",
        "stt_en_fastconformer_hybrid_large_pc",
        "about 115M",
        ("bpe", 1024),
        (("hybrid bpe->bpe", "conformer_ctc_bpe.yaml"),),
        hybrid=True,
    ),
    "parakeet_ctc_0.6b": Family(
        "parakeet_ctc_0.6b_bpe.yaml",
        "parakeet-ctc-0.6b",
        "about 600M",
        ("bpe", 1024),
        (("bpe->bpe", "conformer_ctc_bpe.yaml"),),
    ),
}

MACHINE = "one core of the project's 2-core CPU (taskset -c 1), torch 1 thread"


# --- data and vocabularies (made once per work folder) ----------------------------------------------------


def english_text(work: Path) -> Path:
    """A text-only manifest of English for the bases' SentencePiece tokenizers: the en grammar's sentences
    and the docstrings and comments of Python's standard library (plain English on every machine), reduced
    to a-z, apostrophe and space. The grammar alone holds about 200 words: too few for 1024 pieces."""
    import io
    import sysconfig
    import tokenize

    from asr_transfer.languages import load_language
    from asr_transfer.synth.grammar import sentences

    path = work / "english_text.json"
    if path.is_file():
        return path
    generator = sentences(load_language("en").grammar, random.Random(0))
    lines = [sentence for _, sentence in zip(range(2000), generator, strict=False)]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for source in sorted(stdlib.glob("*.py")):
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(source.read_text(encoding="utf-8")).readline))
        except (SyntaxError, UnicodeDecodeError, tokenize.TokenError):
            continue
        for token in tokens:
            if token.type == tokenize.COMMENT or (token.type == tokenize.STRING and token.string.endswith('"""')):
                words = re.sub(r"[^a-z' ]+", " ", token.string.lower()).replace(" '", " ").replace("' ", " ").split()
                words = [word.strip("'") for word in words if word.strip("'")]
                for start in range(0, len(words), 16):
                    if len(words[start : start + 16]) >= 3:
                        lines.append(" ".join(words[start : start + 16]))
    cleaned = []
    for line in lines:
        text = re.sub(r"[^a-z' ]+", " ", line.lower())
        text = " ".join(text.split())
        if text:
            cleaned.append(json.dumps({"audio_filepath": "text-only.wav", "duration": 1.0, "text": text}))
    path.write_text("\n".join(cleaned) + "\n", encoding="utf-8")
    return path


def base_vocabulary(work: Path, kind: str, size: int) -> dict:
    """``{"kind", "dir", "size"}`` of a base vocabulary: characters written out, or SentencePiece BPE trained."""
    from asr_transfer.tokenizers.train import train_tokenizer

    if kind == "char":
        folder = work / f"base_char_{size}"
        folder.mkdir(parents=True, exist_ok=True)
        labels = ENGLISH if size == len(ENGLISH) else [" ", *(chr(0x4E00 + i) for i in range(size - 1))]
        (folder / "vocab.txt").write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
        return {"kind": "char", "dir": str(folder), "size": len(labels)}
    folder = train_tokenizer([str(english_text(work))], "en", "bpe", work / "base_tokenizers", vocab_size=size)
    with open(folder / "tokenizer.vocab", encoding="utf-8") as handle:
        return {"kind": "bpe", "dir": str(folder), "size": sum(1 for _ in handle)}


def german_data(work: Path, clips: int = 40, train_clips: int = 8, dev_clips: int = 2) -> dict:
    """A synthetic German release (espeak-ng), prepared; manifests of its shortest train and dev clips; the
    German character vocabulary and a SentencePiece BPE of :data:`GERMAN_BPE` pieces (each made once)."""
    from asr_transfer.fileio import read_manifest, write_manifest
    from asr_transfer.layout import summary_path
    from asr_transfer.manifests.pipeline import BuildOptions
    from asr_transfer.manifests.prepare_cv import prepare_common_voice
    from asr_transfer.synth.synth_cv import synth_cv
    from asr_transfer.tokenizers.train import train_tokenizer

    root = work / "cv_de"
    if not any(root.glob("*/de/validated.tsv")):
        synth_cv("de", clips, str(root), seed=21, progress=False, jobs=1)
    data = work / "prepared_de"
    if not summary_path(data).is_file():
        prepare_common_voice(str(root), str(data), "de", BuildOptions(progress=False, jobs=1))
    short = {}
    for split, count in (("train", train_clips), ("dev", dev_clips)):
        entries = sorted(read_manifest(str(data / f"{split}.json")), key=lambda entry: float(entry["duration"]))
        short[split] = work / f"short_{split}.json"
        write_manifest(short[split], entries[:count])
    train = str(data / "train.json")
    tokenizers = work / "german_tokenizers"
    return {
        "train": str(short["train"]),
        "dev": str(short["dev"]),
        "durations": [float(entry["duration"]) for entry in read_manifest(str(short["train"]))],
        "char": str(train_tokenizer([train], "de", "char", tokenizers)),
        "bpe": str(train_tokenizer([train], "de", "bpe", tokenizers, vocab_size=GERMAN_BPE)),
    }


# --- the stages, each in its own process ----------------------------------------------------------------------


def build_base(arch: str, vocab: dict, out: str, hybrid: bool) -> dict:
    """A random-weights model of ``arch`` with ``vocab``, saved to ``out``; its parameter count and class."""
    import torch
    from omegaconf import OmegaConf, open_dict

    from asr_transfer.training.config import load_arch
    from asr_transfer.training.models import build_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model_cfg = load_arch(str(ARCH / arch))
    if hybrid:
        from nemo.collections.asr.models import EncDecHybridRNNTCTCBPEModel

        with open_dict(model_cfg):
            model_cfg.tokenizer = {"dir": vocab["dir"], "type": "bpe"}
        model = EncDecHybridRNNTCTCBPEModel(cfg=model_cfg)
    else:
        model = build_model(model_cfg, OmegaConf.create({"kind": vocab["kind"], "dir": vocab["dir"]}))
    model.save_to(out)
    return {"parameters": sum(p.numel() for p in model.parameters()), "class": type(model).__name__}


def restore_and_transcribe(nemo: str, audio: str) -> dict:
    """Stock NeMo: ``ASRModel.restore_from`` and ``transcribe`` of one file; seconds of each, the transcript."""
    import logging

    import torch

    logging.raiseExceptions = False
    torch.set_num_threads(1)
    from nemo.collections.asr.models import ASRModel

    started = time.perf_counter()
    model = ASRModel.restore_from(nemo, map_location="cpu")
    restored = time.perf_counter()
    hypotheses = model.transcribe([audio], batch_size=1, verbose=False)
    text = hypotheses[0].text if hasattr(hypotheses[0], "text") else str(hypotheses[0])
    return {
        "class": type(model).__name__,
        "vocabulary_size": int(model.decoder.num_classes_with_blank) - 1,  # blank excluded
        "restore_s": round(restored - started, 1),
        "transcribe_s": round(time.perf_counter() - restored, 1),
        "text": text,
    }


def child_env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("ASR_TRANSFER_VERBOSE", None)
    return env


def run_stage(command: list[str], log: Path) -> dict:
    """Run ``command`` (output appended to ``log``); its wall seconds, peak RSS (GiB) and exit status."""
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"$ {shlex.join(command)}\n")
        handle.flush()
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=child_env(), cwd=REPO)
        # wait4 gives this child's own resource use (RUSAGE_CHILDREN would be the maximum over all children)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_s": round(time.perf_counter() - started, 1),
        "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2),  # KiB on Linux
        "rc": process.returncode,
    }


def tool_command(*arguments: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *arguments]


def asr_transfer(*arguments: str) -> list[str]:
    script = Path(sys.executable).parent / "asr-transfer"  # the console script of this environment
    return [str(script), *arguments] if script.is_file() else [sys.executable, "-m", "asr_transfer.cli", *arguments]


def last_json(log: Path) -> dict:
    for line in reversed(log.read_text(encoding="utf-8", errors="replace").splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}


class StageFailed(RuntimeError):
    pass


def checked(stage: str, result: dict, log: Path) -> dict:
    if result["rc"] != 0:
        tail = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()][-3:]
        killed = " (killed: out of memory?)" if result["rc"] in (-9, 137) else ""
        raise StageFailed(f"{stage} exited {result['rc']}{killed}: {' | '.join(tail)[-400:]}")
    return result


def mb(path: str | Path) -> float:
    return round(os.path.getsize(path) / 1e6, 1)


def run_family(name: str, family: Family, work: Path, data: dict, keep: bool) -> list[dict]:
    """Every route of one family; one row each (an ``error`` key where a stage failed)."""
    folder = work / "families" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log = folder / "log.txt"
    rows = []
    kind, size = family.vocab
    vocab = base_vocabulary(work, kind, size)
    base = folder / f"{name}_random.nemo"
    built = checked(
        "build",
        run_stage(
            tool_command("_build", family.arch, json.dumps(vocab), str(base), *(["--hybrid"] if family.hybrid else [])),
            log,
        ),
        log,
    )
    info = last_json(log)
    for route, config in family.routes:
        row = {
            "family": name,
            "base": family.base,
            "arch": f"recipes/conf/arch/{family.arch}",
            "route": route,
            "published_parameters": family.published,
            "base_class": info["class"],
            "parameters": info["parameters"],
            "base_vocabulary": f"{vocab['kind']} {vocab['size']}",
            "base_nemo_mb": mb(base),
            "build": built,
        }
        rows.append(row)
        target = "bpe" if route.endswith("bpe") else "char"
        run = folder / "exp"
        try:
            options = ["--config", str(CONF / config), "--steps", "2", "--val-every", "2", "--exp-dir", str(run)]
            options += ["--name", re.sub(r"\W+", "_", f"{name}_{route}"), "--no-progress-bar"]
            overrides = [
                "lang=de",
                "init.pretrained=null",
                f"init.nemo={base}",
                f"vocab.kind={target}",
                f"vocab.dir={data[target]}",
                f"data.train_manifest={data['train']}",
                f"data.dev_manifest={data['dev']}",
                "data.batch_size=2",
                "data.num_workers=0",
            ]
            finetune = asr_transfer("finetune", *options, *overrides)
            row["command"] = shlex.join(["asr-transfer", "finetune", *options, *overrides])
            row["finetune"] = checked("finetune", run_stage(finetune, log), log)
            printed = subprocess.run(
                asr_transfer("finetune", *options, "--print", "run-dir", *overrides),
                capture_output=True,
                text=True,
                env=child_env(),
                cwd=REPO,
                check=True,
            )
            run_dir = Path(printed.stdout.strip().splitlines()[-1])
            throughput = json.loads((run_dir / "throughput.json").read_text())
            report = json.loads((run_dir / "model_report.json").read_text())
            row["finetuned_parameters"] = report["parameters"]
            row["steps"] = throughput["steps"]
            train_seconds = throughput["utterances"] / throughput["utterances_per_second"]
            row["seconds_per_step"] = round(train_seconds / max(1, throughput["steps"]), 2)
            exported = folder / f"{name}_de.nemo"
            row["export"] = checked(
                "export", run_stage(asr_transfer("export", "--run", str(run_dir), "--out", str(exported)), log), log
            )
            row["exported_nemo_mb"] = mb(exported)
            audio = json.loads(Path(data["dev"]).read_text().splitlines()[0])["audio_filepath"]
            row["restore_transcribe"] = checked(
                "restore+transcribe", run_stage(tool_command("_restore", str(exported), audio), log), log
            )
            row["stock_nemo"] = last_json(log)
        except (StageFailed, subprocess.CalledProcessError, OSError, KeyError, ValueError) as error:
            row["error"] = f"{type(error).__name__}: {error}"
        finally:
            if not keep:
                shutil.rmtree(run, ignore_errors=True)
                for path in folder.glob("*_de.nemo"):
                    path.unlink()
        print(json.dumps(row), flush=True)
    if not keep:
        base.unlink(missing_ok=True)
    return rows


# --- activation memory of the largest base, for the one-GPU arithmetic -----------------------------------------

XXL = {"d_model": 1024, "n_heads": 8, "conv_kernel_size": 5, "xscaling": True}  # parakeet-ctc-1.1b (42 layers)


def saved_bytes(n_layers: int, seconds: float, utterances: int = 1) -> tuple[int, int]:
    """Bytes autograd saves for backward in one bf16-autocast forward of a FastConformer-XXL encoder of
    ``n_layers`` layers (NeMo's ConformerEncoder, training mode, its default attention), on ``utterances``
    random inputs of ``seconds`` each: (activations, bf16 copies of the weights). Measured on the CPU with
    ``torch.autograd.graph.saved_tensors_hooks`` (each storage counted once)."""
    import torch
    from nemo.collections.asr.modules import ConformerEncoder

    torch.set_num_threads(1)
    torch.manual_seed(0)
    encoder = ConformerEncoder(
        feat_in=80,
        n_layers=n_layers,
        subsampling="dw_striding",
        subsampling_factor=8,
        subsampling_conv_channels=256,
        ff_expansion_factor=4,
        self_attention_model="rel_pos",
        att_context_size=[-1, -1],
        untie_biases=True,
        conv_norm_type="batch_norm",
        **XXL,
    ).train()
    parameters = {p.untyped_storage().data_ptr() for p in encoder.parameters()}
    shapes = {tuple(p.shape) for p in encoder.parameters()}
    seen, activations, weight_copies = set(), 0, 0

    def pack(tensor):
        nonlocal activations, weight_copies
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in seen and key not in parameters:
            seen.add(key)
            if tensor.dtype == torch.bfloat16 and tuple(tensor.shape) in shapes:  # autocast's cast of a weight
                weight_copies += storage.nbytes()
            else:
                activations += storage.nbytes()
        return tensor

    frames = int(seconds * 100)  # 10 ms mel frames
    features = torch.randn(utterances, 80, frames)
    lengths = torch.full((utterances,), frames)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            encoder(audio_signal=features, length=lengths)
    return activations, weight_copies


def activation_figures() -> dict:
    """Activation bytes of the XXL encoder: the subsampling, and per layer a*T + b*T^2 (T: output frames of
    one utterance), solved from 10 s and 20 s utterances; then per 600 s batch of 10 s and of 20 s clips."""
    per_layer, pre_encode = {}, {}
    for seconds in (10.0, 20.0):
        one, _ = saved_bytes(1, seconds)
        two, copies = saved_bytes(2, seconds)
        per_layer[seconds] = two - one
        pre_encode[seconds] = one - (two - one)
    t10, t20 = 10.0 * 12.5, 20.0 * 12.5  # 8x subsampling of 100 frames per second
    quadratic = (per_layer[20.0] / t20 - per_layer[10.0] / t10) / (t20 - t10)
    linear = per_layer[10.0] / t10 - quadratic * t10
    figures = {
        "per_layer_bytes_per_frame": round(linear),
        "per_layer_bytes_per_frame_squared": round(quadratic),
        "per_layer_mib_10s": round(per_layer[10.0] / 2**20, 1),
        "per_layer_mib_20s": round(per_layer[20.0] / 2**20, 1),
        "subsampling_mib_10s": round(pre_encode[10.0] / 2**20, 1),
        "subsampling_mib_20s": round(pre_encode[20.0] / 2**20, 1),
    }
    for seconds in (10.0, 20.0):
        clips = 600.0 / seconds
        layers = 42 * per_layer[seconds] * clips
        figures[f"batch_600s_of_{int(seconds)}s_clips_gib"] = round((layers + pre_encode[seconds] * clips) / 2**30, 1)
    return figures


# --- report ---------------------------------------------------------------------------------------------------


def versions() -> dict:
    from importlib import metadata

    found = {"python": platform.python_version()}
    for package in ("nemo_toolkit", "torch", "lightning"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "absent"
    return found


def _millions(count) -> str:
    return f"{count / 1e6:.1f}M" if isinstance(count, int) else "-"


def markdown(result: dict) -> str:
    lines = [
        "# Real-size route: random-weights bases of every family, 2 CPU training steps",
        "",
        "Commands (pinned: `taskset -c 1 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1` before each):  ",
        *[f"`{command}`  " for command in result["commands"]],
        f"Date (last run): {result['date']}  ",
        f"Machine: {result['machine']}  ",
        "Versions: " + ", ".join(f"{key} {value}" for key, value in result["versions"].items()) + "  ",
        f"Data: {result['data']}",
        "",
        "| family | route | parameters (published) | base vocabulary | base .nemo MB | s/step | finetune peak RSS GiB "
        "| build s | finetune s | export s | restore s | transcribe s | restore peak RSS GiB | export MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        if "error" in row and "finetune" not in row:
            size = f"{_millions(row.get('parameters'))} ({row['published_parameters']})"
            lines.append(
                f"| {row['family']} | {row['route']} | {size} "
                f"| {row.get('base_vocabulary', '-')} | {row.get('base_nemo_mb', '-')} | failed: {row['error'][:160]} |"
                " | | | | | | | |"
            )
            continue
        finetune, stock = row.get("finetune", {}), row.get("stock_nemo", {})
        lines.append(
            "| "
            + " | ".join(
                str(value)
                for value in (
                    row["family"],
                    row["route"],
                    f"{_millions(row['parameters'])} ({row['published_parameters']})",
                    row["base_vocabulary"],
                    row["base_nemo_mb"],
                    row.get("seconds_per_step", "-"),
                    finetune.get("peak_rss_gib", "-"),
                    row["build"]["wall_s"],
                    finetune.get("wall_s", "-"),
                    row.get("export", {}).get("wall_s", "-"),
                    stock.get("restore_s", "-"),
                    stock.get("transcribe_s", "-"),
                    row.get("restore_transcribe", {}).get("peak_rss_gib", "-"),
                    row.get("exported_nemo_mb", "-"),
                )
            )
            + " |"
        )
    errors = [row for row in result["rows"] if "error" in row]
    lines += ["", "Failures:" if errors else "Every route ran to a stock-NeMo transcript."]
    lines += [f"- {row['family']} {row['route']}: {row['error']}" for row in errors]
    lines += [
        "",
        "Parameters: the built base (a hybrid counts its transducer decoder and joint too; fine-tuning keeps "
        "its encoder and CTC head). s/step: training batches only (the run's throughput.json), restore and "
        "validation excluded; batch 2. Peak RSS: that stage's process (ru_maxrss).",
    ]
    return "\n".join(lines) + "\n"


# --- main -----------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--families", default=",".join(FAMILIES), help=f"comma-separated subset of {','.join(FAMILIES)}"
    )
    parser.add_argument("--out", default=str(REPO / "docs" / "results" / "real_size"), help="results folder")
    parser.add_argument("--work", default="/tmp/real_size", help="work folder, data reused (default /tmp/real_size)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the .nemo files and run folders (GBs for large bases)"
    )
    parser.add_argument(
        "--activations",
        action="store_true",
        help="instead: bytes autograd saves per layer of Parakeet-CTC 1.1B's encoder (OUT/activations.json)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_build"]:  # internal stages, run in a child process of this tool
        vocab = json.loads(argv[2])
        print(json.dumps(build_base(argv[1], vocab, argv[3], "--hybrid" in argv[4:])), flush=True)
        return 0
    if argv[:1] == ["_restore"]:
        print(json.dumps(restore_and_transcribe(argv[1], argv[2])), flush=True)
        return 0
    args = build_parser().parse_args(argv)
    names = [name for name in args.families.split(",") if name]
    unknown = [name for name in names if name not in FAMILIES]
    if unknown:  # one error line, as run_tool reports a UserError (argparse's error() prints its usage too)
        from asr_transfer.errors import UserError

        raise UserError(f"--families: unknown families {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
    import logging

    logging.raiseExceptions = False
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    if args.activations:
        figures = {
            "command": shlex.join(["python", "tools/real_size.py", *argv]),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": MACHINE,
            "versions": versions(),
            "encoder": "FastConformer XXL layers (parakeet-ctc-1.1b: d_model 1024, 8 heads, conv kernel 5), "
            "bf16 autocast, training mode, NeMo's default attention",
            **activation_figures(),
        }
        (out / "activations.json").write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
        print(json.dumps(figures, indent=1))
        return 0
    data = german_data(work)
    durations = data["durations"]
    command = shlex.join(["python", "tools/real_size.py", *argv])
    result = {"commands": [], "rows": []}
    if (out / "results.json").is_file():  # a run of some families replaces their rows and keeps the others
        result = json.loads((out / "results.json").read_text(encoding="utf-8"))
        result["rows"] = [row for row in result["rows"] if row["family"] not in names]
        result["commands"] = result.get("commands") or [result.pop("command")]
    result.update(
        {
            "commands": [*[line for line in result["commands"] if line != command], command],
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": MACHINE,
            "versions": versions(),
            "data": (
                f"{len(durations)} synthetic German train clips of {min(durations):.1f}-{max(durations):.1f} s "
                f"(espeak-ng), batch 2, 2 steps; targets: German characters or SentencePiece BPE {GERMAN_BPE}"
            ),
        }
    )
    order = list(FAMILIES)
    for name in names:
        try:
            result["rows"] += run_family(name, FAMILIES[name], work, data, args.keep)
            result["rows"].sort(key=lambda row: order.index(row["family"]))
        except (StageFailed, OSError, ValueError) as error:
            result["rows"].append(
                {"family": name, "route": "-", "published_parameters": FAMILIES[name].published, "error": str(error)}
            )
            print(json.dumps(result["rows"][-1]), flush=True)
        (out / "results.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        (out / "RESULTS.md").write_text(markdown(result), encoding="utf-8")
    return 1 if any("error" in row for row in result["rows"]) else 0


if __name__ == "__main__":
    from asr_transfer.errors import run_tool

    sys.exit(run_tool(main))
