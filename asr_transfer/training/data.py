"""Training data for NeMo CTC models: dataset configs and the CTC length check.

In: a model, NeMo manifests and the ``data`` config. Out: ``train_ds``/``validation_ds`` configs
(char labels or the tokenizer, SpecAugment stays in the model, optional speed perturbation, optional
Lhotse duration bucketing with ``batch_duration``, Lhotse Shar shards split by rank), and a manifest
holding only utterances whose label sequence fits the encoder's output (CTC needs T >= U + repeated
labels), with a report of the others.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf

from asr_transfer.fileio import atomic_open, read_manifest, write_manifest
from asr_transfer.training.models import is_bpe


def dataset_config(
    model, manifest: str | None, data_cfg: DictConfig, train: bool, rank: int = 0, world_size: int = 1
) -> DictConfig:
    """NeMo's dataset config; the training set reads ``data.shar_path`` shards when set (this rank's share)."""
    cfg = {
        "manifest_filepath": manifest,
        "sample_rate": int(model.cfg.get("sample_rate", 16000)),
        "batch_size": int(data_cfg.batch_size),
        "shuffle": train,
        "num_workers": int(data_cfg.num_workers),
        "pin_memory": torch.cuda.is_available(),
        "trim_silence": False,
        "normalize_transcripts": False,
        "parser": "base",
    }
    if not is_bpe(model):
        cfg["labels"] = list(model.decoder.vocabulary)
    if train:
        # No defaults here: recipes/conf/common.yaml is the one place they are set.
        cfg["max_duration"] = float(data_cfg.max_duration)
        cfg["min_duration"] = float(data_cfg.min_duration)
        if data_cfg.speed_perturb:
            cfg["augmentor"] = {
                "speed": {
                    "prob": 0.5,
                    "sr": cfg["sample_rate"],
                    # NeMo 3.0 accepts only librosa's kaiser_* (which need resampy, not installed: NeMo
                    # then logs a warning and skips every perturbation) and fft/scipy (scipy's resampler).
                    "resample_type": "fft",
                    "min_speed_rate": 0.9,
                    "max_speed_rate": 1.1,
                }
            }
        shar_index = None
        if data_cfg.get("shar_path"):
            shar_index = shar_config(cfg, str(data_cfg.shar_path), rank, world_size)
        if data_cfg.bucketing:
            # NeMo's Lhotse path: dynamic duration buckets, batches filled up to batch_duration seconds.
            cfg.update(
                {
                    "use_lhotse": True,
                    "batch_duration": float(data_cfg.batch_duration),
                    "use_bucketing": True,
                    "num_buckets": int(data_cfg.num_buckets),
                    "shuffle_buffer_size": 10000,
                    "batch_size": None,
                    # Lhotse's concurrent bucketer fills buckets from a non-daemon thread that never ends on
                    # an endless shard stream: the process hung after training. The loader workers prefetch.
                    "concurrent_bucketing": False,
                }
            )
            bins = (shar_index or {}).get("bucket_duration_bins")
            if bins:  # precomputed by the sharding step: no estimation pass over the data at start-up
                cfg.update({"bucket_duration_bins": list(bins), "num_buckets": len(bins) + 1})
        if cfg.get("use_lhotse") and cfg.pop("augmentor", None):
            # NeMo's Lhotse path ignores the augmentor; its own speed perturbation adds 0.9x and 1.1x copies
            cfg["perturb_speed"] = True
    return OmegaConf.create(cfg)


def shar_config(cfg: dict, shar_path: str, rank: int, world_size: int) -> dict | None:
    """Point ``cfg`` at this rank's Lhotse Shar shards (every ``world_size``-th one, so no two ranks share a
    clip); returns the folder's ``shar_index.json`` when it has one. Lhotse reads shards as an endless
    stream, so ``trainer.max_steps`` and ``val_check_interval`` count training, not epochs."""
    from asr_transfer.manifests.shar import rank_fields, read_index, shard_fields

    cfg.update(
        {
            "use_lhotse": True,
            "manifest_filepath": None,
            "shar_path": rank_fields(shard_fields(shar_path), rank, world_size),
            # each dataloader worker of a rank shuffles its rank's shards with its own seed, from ``seed``
            "shard_seed": "randomized",
            "seed": int(torch.initial_seed() % 2**31),
            # Lhotse holds each buffered cut's audio in memory, per loader worker; the shards are already
            # shuffled when written and read in a shuffled order, so a fifth of NeMo's 10000 mixes enough.
            "shuffle_buffer_size": 2000,
        }
    )
    return read_index(shar_path)


def encoder_frames_per_second(model) -> float:
    """Encoder output frames per second of audio, measured on a 10 s silent signal."""
    sample_rate = int(model.cfg.get("sample_rate", 16000))
    seconds = 10
    was_training = model.training
    model.eval()
    with torch.no_grad():
        signal = torch.zeros(1, seconds * sample_rate, device=model.device)
        length = torch.tensor([signal.shape[1]], device=model.device)
        features, feature_length = model.preprocessor(input_signal=signal, length=length)
        _, encoded_length = model.encoder(audio_signal=features, length=feature_length)
    model.train(was_training)
    return float(encoded_length.item()) / seconds


def label_ids(model, text: str) -> list[int]:
    if is_bpe(model):
        return model.tokenizer.text_to_ids(text)
    index = {label: position for position, label in enumerate(model.decoder.vocabulary)}
    return [index[char] for char in text if char in index]


def ctc_frames_needed(ids: list[int]) -> int:
    """Frames CTC needs for a label sequence: one per label plus a blank between equal neighbours."""
    repeats = sum(1 for previous, current in zip(ids, ids[1:], strict=False) if previous == current)
    return len(ids) + repeats


@dataclass
class LengthCheck:
    kept: int
    dropped: int
    manifest: str
    report: str


def check_label_lengths(model, manifest: str, out_dir: str, name: str) -> LengthCheck:
    """Write ``<out_dir>/<name>_fits.json`` with the utterances CTC can align, and list the others
    (with frames available and needed) in ``<name>_too_long_labels.tsv``."""
    frames_per_second = encoder_frames_per_second(model)
    fits, dropped = [], 0
    report = os.path.join(out_dir, f"{name}_too_long_labels.tsv")
    with atomic_open(report) as handle:
        handle.write("audio_filepath\tduration\tframes\tframes_needed\ttext\n")
        for entry in read_manifest(manifest, fields=("audio_filepath", "duration", "text")):
            frames = math.floor(float(entry["duration"]) * frames_per_second)
            needed = ctc_frames_needed(label_ids(model, entry["text"]))
            if frames >= needed:
                fits.append(entry)
            else:
                dropped += 1
                handle.write(f"{entry['audio_filepath']}\t{entry['duration']}\t{frames}\t{needed}\t{entry['text']}\n")
    kept_manifest = os.path.join(out_dir, f"{name}_fits.json")
    write_manifest(kept_manifest, fits)
    return LengthCheck(len(fits), dropped, kept_manifest, report)
