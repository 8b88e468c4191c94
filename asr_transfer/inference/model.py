"""Loading a ``.nemo`` model for inference and transcribing with NeMo's decoders.

In: a ``.nemo`` path (checked to be a complete archive first), audio paths, a decoding choice
(``greedy``: NeMo's batched greedy CTC decoder, with CUDA graphs on GPU; ``beam``: NeMo's batched CTC
beam search, ``--beam-size``). Out: transcripts.
"""

from __future__ import annotations

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


def set_decoding(model, decoding: str = "greedy", beam_size: int = 4) -> None:
    config = model.cfg.decoding
    with open_dict(config):
        if decoding == "greedy":
            config.strategy = "greedy_batch"
        elif decoding == "beam":
            config.strategy = "beam_batch"
            config.beam.beam_size = int(beam_size)
            config.beam.return_best_hypothesis = True
        else:
            raise UserError(f"--decoding {decoding} is unknown; use greedy or beam")
    model.change_decoding_strategy(config, verbose=False)


def transcribe_paths(model, paths: list[str], batch_size: int = 8) -> list[str]:
    if not paths:
        return []
    with torch.inference_mode():
        outputs = model.transcribe(paths, batch_size=batch_size, verbose=False)
    if isinstance(outputs, tuple):  # older NeMo returned (best, all)
        outputs = outputs[0]
    return [output.text if hasattr(output, "text") else str(output) for output in outputs]
