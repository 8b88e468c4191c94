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
    from nemo.utils import logging as nemo_logging

    from asr_transfer.nemofile import restore_model

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    # Restoring a model without its training data warns with the whole dataset config; for
    # evaluation and transcription that is noise that buries the result line.
    with nemo_logging.temp_verbosity(nemo_logging.ERROR):
        model = restore_model(path, named, map_location=device)
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


def lm_vocabulary_problem(lm_path: str, model, model_path: str | None = None) -> str | None:
    """Why an LM cannot serve ``model``, as '<what is wrong>; <what to do>' to follow the LM's name, or None.

    An LM from train-lm carries a record of the vocabulary it was built for, compared by digest: an LM of
    another model with as many tokens reads as valid and silently decodes other characters. An LM without
    one must at least list exactly this model's token symbols. Any LM must be an ARPA file NeMo's loader reads.
    """
    import os

    from asr_transfer.lm.ngram import arpa_problem
    from asr_transfer.lm.train import lm_record, model_vocabulary, vocabulary_digest

    rebuild = f"asr-transfer train-lm --model {model_path or 'MODEL.nemo'} (the model you decode with)"
    if not os.path.isfile(lm_path):
        return f"does not exist; build it with {rebuild}"
    record = lm_record(lm_path)
    if record is not None and record["digest"] != vocabulary_digest(model):
        kind, tokens = model_vocabulary(model)
        built_for, here = f"{record.get('size')} {record.get('kind')} tokens", f"{len(tokens)} {kind} tokens"
        return (
            f"does not fit this model: train-lm built it for {record.get('model') or 'another model'} "
            f"({built_for}), and this model has {here}{' with other labels' if here == built_for else ''}; "
            f"rebuild it with {rebuild}"
        )
    problem = arpa_problem(lm_path, len(model.decoder.vocabulary))
    if problem is None:
        return None
    if problem.vocabulary:
        return (
            f"does not fit this model: {problem.what}; asr-transfer decodes with token-level LMs over the model's "
            f"own tokens: build one with {rebuild}"
        )
    return f"is not an ARPA file NeMo's loader can read: {problem.what}; rebuild it with {rebuild}"


def lm_loader_failure(error: BaseException) -> str | None:
    """Where inside NeMo's n-gram LM loader ``error`` was raised (the failing line), or None when it came from
    elsewhere: only a failure there is the LM file's fault; any other keeps its traceback."""
    import linecache
    import os

    frame, traceback = None, error.__traceback__
    while traceback is not None:
        if f"{os.sep}ngram_lm{os.sep}" in traceback.tb_frame.f_code.co_filename:
            frame = traceback
        traceback = traceback.tb_next
    if frame is None:
        return None
    filename = frame.tb_frame.f_code.co_filename
    source = linecache.getline(filename, frame.tb_lineno).strip()
    message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return f"{message} at {os.path.basename(filename)}:{frame.tb_lineno} ({source})"


def set_decoding(model, decoding: str | Decoding = "greedy", beam_size: int = 4, model_path: str | None = None) -> None:
    """Sets the model's CTC decoder; an LM is checked first (``lm_vocabulary_problem``), and what NeMo's loader
    still cannot read of it is one error too. ``model_path`` only names the model in those errors."""
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
        problem = lm_vocabulary_problem(decoding.lm, model, model_path)
        if problem:
            raise UserError(f"the LM {decoding.lm} {problem}")
    try:
        model.change_decoding_strategy(config, verbose=False)  # NeMo reads the LM file here
    except (AssertionError, ValueError, KeyError, IndexError) as error:
        failure = lm_loader_failure(error) if decoding.lm else None
        if failure is None:
            raise
        raise UserError(
            f"NeMo's ARPA loader cannot read the LM {decoding.lm} ({failure}): it breaks an ARPA rule, such as "
            f"listing every n-gram's context and suffix; rebuild it with asr-transfer train-lm --model "
            f"{model_path or 'MODEL.nemo'}"
        ) from error


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
        try:
            with open(args.lm_params, encoding="utf-8") as handle:
                tuned = json.load(handle)
            lm = os.path.join(os.path.dirname(os.path.abspath(args.lm_params)), tuned["lm"])
            decoding = Decoding(
                "beam", int(tuned["beam_size"]), lm, float(tuned["lm_alpha"]), float(tuned["beam_beta"])
            )
        except (ValueError, KeyError, TypeError) as error:
            raise UserError(
                f"--lm-params {args.lm_params} is not a tune-lm result ({type(error).__name__}: {error}); "
                "write it with asr-transfer tune-lm"
            ) from None
        # the LM itself is checked against the model where it is used (set_decoding), like an --lm
        return decoding
    if args.lm:
        if not os.path.isfile(args.lm):
            raise UserError(f"--lm {args.lm} does not exist; build one with asr-transfer train-lm")
        return Decoding("beam", args.beam_size, args.lm, args.lm_alpha, args.beam_beta)
    return Decoding(args.decoding, args.beam_size)


DECODED_PER_CALL = 256  # multi-channel files held decoded in memory at once


def transcribe_paths(model, paths: list[str], batch_size: int = 8) -> list[str]:
    """Transcripts of ``paths`` (any rate, channel count and sample format libsndfile decodes), in order.

    NeMo reads a mono file itself and resamples it as its dataset loaders do in training, so evaluation
    matches validation. A file of several channels it would hand on as several signals (a traceback), so
    such a file is downmixed and resampled to the model's rate here and passed as samples."""
    from asr_transfer.manifests.audio import channel_count, decode_mono, model_sample_rate

    channels = [channel_count(path) for path in paths]
    mono = [index for index, count in enumerate(channels) if count == 1]
    several = [index for index, count in enumerate(channels) if count > 1]
    rate = model_sample_rate(model)

    def groups():  # lazily, so that one chunk of decoded audio is held at a time
        yield mono, [paths[index] for index in mono]
        for start in range(0, len(several), DECODED_PER_CALL):
            chunk = several[start : start + DECODED_PER_CALL]
            yield chunk, [decode_mono(paths[index], rate) for index in chunk]

    texts: list[str] = [""] * len(paths)
    for indices, audio in groups():
        if not indices:
            continue
        with torch.inference_mode():
            outputs = model.transcribe(audio, batch_size=batch_size, verbose=False)
        if isinstance(outputs, tuple):  # older NeMo returned (best, all)
            outputs = outputs[0]
        for index, output in zip(indices, outputs, strict=True):
            texts[index] = output.text if hasattr(output, "text") else str(output)
    return texts
