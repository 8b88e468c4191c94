"""``asr-transfer tune-lm``: the LM weight and length bonus that decode dev best, by grid search.

In: a ``.nemo`` model, an ARPA LM (``train-lm``), a dev manifest, the grids of ``lm_alpha`` and
``beam_beta`` and the beam size. The model's log-probabilities are computed once; each grid point only
re-runs NeMo's ``beam_batch`` search over them. Out: a JSON file (``--out``) with the best point by the
language's primary metric (:func:`asr_transfer.languages.primary_metric` of ``--lang``, else of the language
the model records), the greedy and LM-free beam results on the same dev set
for reference, and the whole grid; ``evaluate --lm-params`` and ``transcribe --lm-params`` read it. Only
dev is ever decoded here, so test results with the tuned weights stay honest.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from asr_transfer.errors import UserError
from asr_transfer.fileio import read_manifest, write_json

DEFAULT_ALPHAS = "0.1,0.25,0.5,0.75,1.0,1.5"
DEFAULT_BETAS = "0,0.5,1,2"


def dev_log_probs(model, manifest: str, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The model's CTC log-probabilities for every dev utterance, batch by batch (computed once)."""
    from torch.utils.data import DataLoader

    from asr_transfer.inference.batches import AudioManifest, pad_batch
    from asr_transfer.manifests.audio import model_sample_rate

    audio = AudioManifest(manifest, model_sample_rate(model))
    batches = []
    device = next(model.parameters()).device
    with torch.inference_mode():
        for signal, lengths in DataLoader(audio, batch_size=batch_size, collate_fn=pad_batch):
            log_probs, encoded_lengths, _ = model(
                input_signal=signal.to(device), input_signal_length=lengths.to(device)
            )
            batches.append((log_probs, encoded_lengths))
    return batches


def decode_all(model, batches) -> list[str]:
    texts = []
    with torch.inference_mode():
        for log_probs, lengths in batches:
            hypotheses = model.decoding.ctc_decoder_predictions_tensor(log_probs, decoder_lengths=lengths)
            texts += [hypothesis.text if hasattr(hypothesis, "text") else str(hypothesis) for hypothesis in hypotheses]
    return texts


def scored(model, batches, references: list[str], decoding, metric: str) -> dict:
    from asr_transfer.inference.evaluate import error_rates
    from asr_transfer.inference.model import set_decoding

    set_decoding(model, decoding)
    started = time.time()
    hypotheses = decode_all(model, batches)
    return {**error_rates(references, hypotheses, metric), "decode_seconds": round(time.time() - started, 3)}


def float_list(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def tune_lm(
    model_path: str,
    lm_path: str,
    manifest: str,
    out_path: str,
    alphas: list[float],
    betas: list[float],
    beam_size: int = 8,
    batch_size: int = 16,
    lang: str | None = None,
) -> dict:
    from tqdm import tqdm

    from asr_transfer.inference.evaluate import scoring_language, scoring_references
    from asr_transfer.inference.model import Decoding, load_model, set_decoding
    from asr_transfer.languages import primary_metric
    from asr_transfer.manifests.checks import EVALUATION_FIELDS, require_manifest

    if not os.path.isfile(lm_path):
        raise UserError(f"--lm {lm_path} does not exist; build one with asr-transfer train-lm")
    if not alphas or not betas:
        raise UserError("--alphas and --betas need at least one value each")
    require_manifest(manifest, EVALUATION_FIELDS, audio="open", role="dev manifest")
    lang = scoring_language(lang, model_path)
    metric = primary_metric(lang)  # alpha and beta are chosen by the language's metric
    references, reference_report = scoring_references(
        [entry["text"] for entry in read_manifest(manifest, EVALUATION_FIELDS)], lang
    )
    if not any(references):
        raise UserError(f"no reference of {manifest} is left to score after normalization; check its text (and --lang)")
    model = load_model(model_path)
    # an LM that does not fit the model is refused before the dev set is run through it
    set_decoding(model, Decoding("beam", beam_size, lm_path, alphas[0], betas[0]), model_path=model_path)
    batches = dev_log_probs(model, manifest, batch_size)
    greedy = scored(model, batches, references, Decoding("greedy"), metric)
    beam = scored(model, batches, references, Decoding("beam", beam_size), metric)
    grid = []
    points = [(alpha, beta) for alpha in alphas for beta in betas]
    for alpha, beta in tqdm(points, desc="tune-lm", unit="point"):
        result = scored(model, batches, references, Decoding("beam", beam_size, lm_path, alpha, beta), metric)
        grid.append({"lm_alpha": alpha, "beam_beta": beta, **result})
    best = min(grid, key=lambda point: (point[metric], point["lm_alpha"], point["beam_beta"]))
    tuned = {
        "lm": os.path.relpath(lm_path, os.path.dirname(os.path.abspath(out_path))),  # the folder can move
        "lm_alpha": best["lm_alpha"],
        "beam_beta": best["beam_beta"],
        "beam_size": beam_size,
        "metric": metric,
        "language": lang,
        "dev_manifest": manifest,
        "references": reference_report,
        "dev": {"greedy": greedy[metric], f"beam{beam_size}": beam[metric], "beam+lm": best[metric]},
        "grid": grid,
    }
    write_json(out_path, tuned)
    return tuned


def build_parser() -> argparse.ArgumentParser:
    from asr_transfer.inference.evaluate import add_lang_argument

    parser = argparse.ArgumentParser(
        prog="asr-transfer tune-lm",
        description="Grid-search the LM weight (alpha) and length bonus (beta) of NeMo's beam_batch CTC search "
        "with an n-gram LM, on dev only. The model runs once; each grid point re-decodes its log-probabilities. "
        "Writes the best values for evaluate/transcribe --lm-params.",
        epilog="Example: asr-transfer tune-lm --model de.nemo --lm lm/char_6gram.arpa --manifest data/dev.json "
        "--out lm/params.json",
    )
    parser.add_argument("--model", required=True, help="the .nemo model")
    parser.add_argument("--lm", required=True, help="ARPA LM from asr-transfer train-lm")
    parser.add_argument("--manifest", required=True, help="dev manifest (audio and reference text)")
    parser.add_argument("--out", required=True, help="JSON file for the tuned parameters")
    parser.add_argument("--alphas", type=float_list, default=float_list(DEFAULT_ALPHAS), help=f"({DEFAULT_ALPHAS})")
    parser.add_argument("--betas", type=float_list, default=float_list(DEFAULT_BETAS), help=f"({DEFAULT_BETAS})")
    parser.add_argument("--beam-size", type=int, default=8, help="beam size (default 8)")
    add_lang_argument(parser)
    parser.add_argument("--batch-size", type=int, default=16, help="utterances per forward pass (default 16)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tuned = tune_lm(
        args.model,
        args.lm,
        args.manifest,
        args.out,
        args.alphas,
        args.betas,
        args.beam_size,
        args.batch_size,
        lang=args.lang,
    )
    dev = tuned["dev"]
    for name, grid in (("alpha", args.alphas), ("beta", args.betas)):
        value = tuned["lm_alpha" if name == "alpha" else "beam_beta"]
        if len(grid) > 1 and value in (min(grid), max(grid)):
            print(f"tune-lm: the best {name} ({value:g}) is at the edge of its grid; widen --{name}s", file=sys.stderr)
    print(
        f"{args.out}: alpha {tuned['lm_alpha']:g}, beta {tuned['beam_beta']:g}; dev {tuned['metric'].upper()} "
        + ", ".join(f"{name} {value:.4f}" for name, value in dev.items()),
        file=sys.stderr,
    )
    return 0
