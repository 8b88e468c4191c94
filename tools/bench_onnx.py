#!/usr/bin/env python
"""Benchmark of CPU decoding: NeMo against the ``export --onnx`` model in ONNX Runtime and sherpa-onnx.

In: a ``.nemo`` CTC model (default: the shipped English char base) and a manifest, or ``--clips N``
synthetic English clips spoken by espeak-ng (made once in ``--work``). Out: a table on stdout (and
``--json``) of utterances per second, each the fastest of ``--repeats`` passes over the manifest, all
greedy, one utterance at a time unless said, on ``--threads`` CPU threads each:

* NeMo: ``model.transcribe`` as ``evaluate`` calls it (batches of 8 and of 1; its dataloader included);
* ONNX Runtime: features from the model's NeMo preprocessor, then ``model.onnx`` (the deployment a
  Python service would run), and ONNX Runtime alone on those features;
* sherpa-onnx: waveform in, its own features, text out (the deployment without Python's NeMo at all);

with the ratios to NeMo batch 8, and how many transcripts equal NeMo's (spaces collapsed). ``--exact-pad``
first sets the model's ``preprocessor.exact_pad: true`` (what ``finetune +model.preprocessor.exact_pad=true``
trains with, here without training): the framing sherpa-onnx computes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE = REPO / "recipes" / "en_base" / "model" / "en_tiny_quartznet_char.nemo"


def synthetic_manifest(work: Path, clips: int) -> str:
    """One manifest of every clip (prepare-cv's train, dev and test splits together)."""
    from asr_transfer.manifests.pipeline import BuildOptions
    from asr_transfer.manifests.prepare_cv import prepare_common_voice
    from asr_transfer.synth.synth_cv import synth_cv

    out = work / f"en_{clips}"
    manifest = out / "all.json"
    if not manifest.exists():
        print(f"synthesizing {clips} English clips into {out} (once)...", flush=True)
        corpus = synth_cv("en", clips, str(out / "cv"), seed=11, progress=False)
        prepare_common_voice(str(corpus.parent.parent), str(out / "data"), "en", BuildOptions(progress=False, jobs=2))
        lines = [(out / "data" / f"{split}.json").read_text(encoding="utf-8") for split in ("train", "dev", "test")]
        manifest.write_text("".join(lines), encoding="utf-8")
    return str(manifest)


def fastest(repeats: int, work) -> tuple[float, list[str]]:
    best, texts = float("inf"), []
    for _ in range(repeats):
        started = time.perf_counter()
        texts = work()
        best = min(best, time.perf_counter() - started)
    return best, texts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(BASE), help="a .nemo CTC model (default: the shipped English base)")
    parser.add_argument("--manifest", help="a NeMo manifest (default: --clips synthetic English clips)")
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "asr_transfer_bench"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of each runtime (torch, ORT, sherpa)")
    parser.add_argument(
        "--exact-pad", action="store_true", help="set preprocessor.exact_pad=true first (sherpa-onnx's framing)"
    )
    parser.add_argument("--json", help="also write the results here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from asr_transfer.errors import UserError
    from asr_transfer.nemofile import check_nemo_file

    for option, value in (("--repeats", args.repeats), ("--threads", args.threads)):
        if value < 1:  # torch refuses 0 threads; 0 repeats time nothing (a division by zero at the table)
            raise UserError(f"{option} {value} is below 1; ask for at least 1")
    check_nemo_file(args.model, "--model")  # before the clips are synthesized, so a bad path fails at once
    import torch
    from omegaconf import OmegaConf

    from asr_transfer.fileio import read_manifest
    from asr_transfer.inference.model import load_model, transcribe_paths
    from asr_transfer.inference.onnx import (
        OnnxRuntimeCtc,
        export_onnx,
        nemo_features,
        sherpa_recognizer,
        sherpa_transcribe,
    )
    from asr_transfer.manifests.audio import decode_mono, model_sample_rate
    from asr_transfer.manifests.checks import audio_path
    from asr_transfer.training.finetune import change_preprocessor

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    manifest = args.manifest or synthetic_manifest(work, args.clips)
    base = Path(manifest).resolve().parent
    paths = [audio_path(entry["audio_filepath"], str(base)) for entry in read_manifest(manifest)]
    onnx_dir = work / ("onnx_" + Path(args.model).stem + ("_exact_pad" if args.exact_pad else ""))

    def restored():
        model = load_model(args.model, "cpu")
        if args.exact_pad:
            change_preprocessor(model, OmegaConf.create({"exact_pad": True}))
        return model.eval()

    export_onnx(restored(), onnx_dir)  # the exporter changes the model it is given
    model = restored()
    rate = model_sample_rate(model)
    runtime = OnnxRuntimeCtc(onnx_dir, args.threads)
    recognizer = sherpa_recognizer(onnx_dir, args.threads)

    def ort_pipeline() -> list[str]:
        return [runtime.transcribe(nemo_features(model, decode_mono(path, rate))) for path in paths]

    features = [nemo_features(model, decode_mono(path, rate)) for path in paths]

    def sherpa() -> list[str]:
        return sherpa_transcribe(onnx_dir, paths, recognizer=recognizer, rate=rate)

    runs = {
        "nemo transcribe, batch 8": lambda: transcribe_paths(model, paths, 8),
        "nemo transcribe, batch 1": lambda: transcribe_paths(model, paths, 1),
        "onnxruntime (nemo features + model.onnx)": ort_pipeline,
        "onnxruntime (model.onnx on features only)": lambda: [runtime.transcribe(f) for f in features],
        "sherpa-onnx (waveform in)": sherpa,
    }
    results = {}
    reference = None
    for name, work_fn in runs.items():
        seconds, texts = fastest(args.repeats, work_fn)
        reference = reference if reference is not None else texts
        same = sum(a.split() == b.split() for a, b in zip(reference, texts, strict=True))
        results[name] = {"utterances_per_second": round(len(paths) / seconds, 1), "same_as_nemo": same}
    nemo_rate = results["nemo transcribe, batch 8"]["utterances_per_second"]
    hours = sum(float(entry.get("duration", 0)) for entry in read_manifest(manifest)) / 3600
    print(f"{len(paths)} utterances ({hours * 60:.1f} min of audio), {Path(args.model).name}, {args.threads} thread(s)")
    print(f"{'':44} {'utt/s':>8} {'x NeMo':>7} {'= NeMo':>7}")
    for name, row in results.items():
        row["ratio_to_nemo_batch8"] = round(row["utterances_per_second"] / nemo_rate, 2)
        rate, ratio, same = row["utterances_per_second"], row["ratio_to_nemo_batch8"], row["same_as_nemo"]
        print(f"{name:44} {rate:8.1f} {ratio:7.2f} {same:7d}")
    if args.json:
        Path(args.json).write_text(json.dumps({"utterances": len(paths), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    from asr_transfer.errors import run_tool

    sys.exit(run_tool(main))
