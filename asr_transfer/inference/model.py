"""Loading a ``.nemo`` model for inference and transcribing with NeMo's decoders.

In: a ``.nemo`` path (checked to be a complete archive first), audio paths, a decoding choice
(``greedy``: NeMo's batched greedy CTC decoder, with CUDA graphs on GPU; ``beam``: NeMo's batched CTC
beam search, ``--beam-size``, optionally fused with an n-gram LM from ``train-lm``). Out: transcripts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import open_dict

from asr_transfer.errors import UserError
from asr_transfer.nemofile import check_nemo_file


def load_model(path: str, device: str | None = None, named: str = "--model"):
    check_nemo_file(path, named)  # before NeMo's slow import, so a bad path fails at once
    from nemo.collections.asr.models import ASRModel
    from nemo.utils import logging as nemo_logging

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    # Restoring a model without its training data warns with the whole dataset config; for
    # evaluation and transcription that is noise that buries the result line.
    with nemo_logging.temp_verbosity(nemo_logging.ERROR):
        model = ASRModel.restore_from(path, map_location=device)
    if "validation_ds" not in model.cfg:  # a model saved before any training: NeMo's BPE transcribe reads it
        with open_dict(model.cfg):
            model.cfg.validation_ds = {}
    model.eval()
    return model


@dataclass(frozen=True)
class Decoding:
    """How CTC output becomes text: NeMo's batched greedy decoder, or its batched beam search
    (``beam_batch``), optionally fused with an n-gram LM: score = acoustic + lm_alpha * LM + beam_beta * length."""

    strategy: str = "greedy"
    beam_size: int = 4
    lm: str | None = None
    lm_alpha: float = 0.5
    beam_beta: float = 0.0

    @property
    def label(self) -> str:
        if self.strategy == "greedy":
            return "greedy"
        if self.lm:
            return f"beam{self.beam_size}+lm(alpha={self.lm_alpha:g}, beta={self.beam_beta:g})"
        return f"beam{self.beam_size}"


def lm_vocabulary_problem(lm_path: str, vocab_size: int) -> str | None:
    """Why an ARPA file cannot serve a model with ``vocab_size`` tokens (a token id beyond them), or None."""
    from asr_transfer.lm.ngram import TOKEN_OFFSET

    in_unigrams = False
    with open(lm_path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("\\1-grams:"):
                in_unigrams = True
                continue
            if in_unigrams and (not line.strip() or line.startswith("\\")):
                return None
            if in_unigrams:
                symbol = line.split("\t")[1].strip()
                if len(symbol) == 1 and ord(symbol) - TOKEN_OFFSET >= vocab_size:
                    return f"it holds token {ord(symbol) - TOKEN_OFFSET}, and the model has {vocab_size} tokens"
    return "it has no \\1-grams: section"


def set_decoding(model, decoding: str | Decoding = "greedy", beam_size: int = 4) -> None:
    if isinstance(decoding, str):
        decoding = Decoding(decoding, beam_size)
    config = model.cfg.decoding
    with open_dict(config):
        if decoding.strategy == "greedy":
            config.strategy = "greedy_batch"
        elif decoding.strategy == "beam":
            config.strategy = "beam_batch"
            config.beam.beam_size = int(decoding.beam_size)
            config.beam.return_best_hypothesis = True
            config.beam.ngram_lm_model = decoding.lm
            config.beam.ngram_lm_alpha = float(decoding.lm_alpha) if decoding.lm else 0.0
            config.beam.beam_beta = float(decoding.beam_beta) if decoding.lm else 0.0
        else:
            raise UserError(f"--decoding {decoding.strategy} is unknown; use greedy or beam")
    if decoding.lm:
        problem = lm_vocabulary_problem(decoding.lm, len(model.decoder.vocabulary))
        if problem:
            raise UserError(f"--lm {decoding.lm} does not fit this model: {problem}; build it with train-lm --model")
    model.change_decoding_strategy(config, verbose=False)


def add_decoding_arguments(parser) -> None:
    """--decoding, --beam-size, --lm, --lm-alpha, --beam-beta and --lm-params, shared by every decoding command."""
    parser.add_argument(
        "--decoding",
        choices=["greedy", "beam"],
        default="greedy",
        help="greedy: NeMo's batched greedy CTC decoding (CUDA graphs on GPU); beam: NeMo's batched CTC beam "
        "search, beam_batch (default greedy; --lm implies beam)",
    )
    parser.add_argument("--beam-size", type=int, default=4, help="hypotheses kept by beam search (default 4)")
    parser.add_argument("--lm", help="n-gram LM (ARPA from asr-transfer train-lm) fused into beam search")
    parser.add_argument("--lm-alpha", type=float, default=0.5, help="LM weight (default 0.5)")
    parser.add_argument("--beam-beta", type=float, default=0.0, help="length bonus per token (default 0)")
    parser.add_argument(
        "--lm-params", help="JSON written by asr-transfer tune-lm: its LM, alpha, beta and beam size (tuned on dev)"
    )


def decoding_from_args(args) -> Decoding:
    import json
    import os

    if args.lm_params:
        if args.lm:
            raise UserError("give --lm or --lm-params, not both")
        if not os.path.isfile(args.lm_params):
            raise UserError(f"--lm-params {args.lm_params} does not exist; write it with asr-transfer tune-lm")
        with open(args.lm_params, encoding="utf-8") as handle:
            tuned = json.load(handle)
        lm = os.path.join(os.path.dirname(os.path.abspath(args.lm_params)), tuned["lm"])
        return Decoding("beam", int(tuned["beam_size"]), lm, float(tuned["lm_alpha"]), float(tuned["beam_beta"]))
    if args.lm:
        if not os.path.isfile(args.lm):
            raise UserError(f"--lm {args.lm} does not exist; build one with asr-transfer train-lm")
        return Decoding("beam", args.beam_size, args.lm, args.lm_alpha, args.beam_beta)
    return Decoding(args.decoding, args.beam_size)


def transcribe_paths(model, paths: list[str], batch_size: int = 8) -> list[str]:
    if not paths:
        return []
    with torch.inference_mode():
        outputs = model.transcribe(paths, batch_size=batch_size, verbose=False)
    if isinstance(outputs, tuple):  # older NeMo returned (best, all)
        outputs = outputs[0]
    return [output.text if hasattr(output, "text") else str(output) for output in outputs]
