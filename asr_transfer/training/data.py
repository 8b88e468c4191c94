"""Training data for NeMo CTC models: dataset configs and the CTC length check.

In: a model, NeMo manifests and the ``data`` config. Out: ``train_ds``/``validation_ds`` configs
(char labels or the tokenizer, SpecAugment stays in the model, optional speed perturbation, optional
noise mixing and room-response convolution from the user's manifests (``data.noise_*``, ``data.rir_*``), optional
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
from asr_transfer.manifests.audio import model_sample_rate
from asr_transfer.manifests.checks import AUDIO_FIELDS, TRAINING_FIELDS
from asr_transfer.manifests.paths import audio_path, rebased_entry
from asr_transfer.training.models import is_bpe


def dataset_config(
    model, manifest: str | None, data_cfg: DictConfig, train: bool, rank: int = 0, world_size: int = 1
) -> DictConfig:
    """NeMo's dataset config; the training set reads ``data.shar_path`` shards when set (this rank's share)."""
    cfg = {
        "manifest_filepath": manifest,
        "sample_rate": model_sample_rate(model),
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
        # No defaults here: asr_transfer/training/schema.py is the one place they are set.
        cfg["max_duration"] = float(data_cfg.max_duration)
        cfg["min_duration"] = float(data_cfg.min_duration)
        if data_cfg.speed_perturb:
            cfg["augmentor"] = {
                "speed": {
                    "prob": float(data_cfg.speed_perturb_params.prob),
                    "sr": cfg["sample_rate"],
                    # NeMo 3.0 accepts only librosa's kaiser_* (which need resampy, not installed: NeMo
                    # then logs a warning and skips every perturbation) and fft/scipy (scipy's resampler).
                    "resample_type": "fft",
                    "min_speed_rate": float(data_cfg.speed_perturb_params.min_rate),
                    "max_speed_rate": float(data_cfg.speed_perturb_params.max_rate),
                }
            }
        shar_index = None
        if data_cfg.get("shar_path"):
            shar_index = shar_config(cfg, str(data_cfg.shar_path), rank, world_size, shuffle_buffer(data_cfg))
        if data_cfg.bucketing:
            # NeMo's Lhotse path: dynamic duration buckets, batches filled up to batch_duration seconds.
            cfg.update(
                {
                    "use_lhotse": True,
                    "batch_duration": float(data_cfg.batch_duration),
                    "use_bucketing": True,
                    "num_buckets": int(data_cfg.num_buckets),
                    "shuffle_buffer_size": shuffle_buffer(data_cfg),
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
        add_noise_and_reverb(cfg, data_cfg)
    return OmegaConf.create(cfg)


def add_noise_and_reverb(cfg: dict, data_cfg: DictConfig) -> None:
    """Noise and room impulse responses from the user's manifests (``data.noise_manifest``,
    ``data.rir_manifest``; see :func:`check_augmentation`) added to the training ``cfg``: on the manifest
    path NeMo's ``ImpulsePerturbation`` then ``NoisePerturbation`` (reverberant speech in a noisy room),
    each with its own probability; on the Lhotse path lhotse's ``CutSet.mix`` (``noise_path``,
    ``noise_snr``, ``noise_mix_prob``) and ``ReverbWithImpulseResponse`` (``rir_path``, a lhotse
    RecordingSet written beside the RIR manifest). SNR in dB: speech power over noise power."""
    noise, rir = data_cfg.get("noise_manifest"), data_cfg.get("rir_manifest")
    if not noise and not rir:
        return
    snr = check_augmentation(data_cfg)
    if cfg.get("use_lhotse"):
        if noise:
            cfg.update({"noise_path": str(noise), "noise_snr": list(snr), "noise_mix_prob": float(data_cfg.noise_prob)})
        if rir:
            cfg.update(
                {"rir_enabled": True, "rir_path": lhotse_recordings(str(rir)), "rir_prob": float(data_cfg.rir_prob)}
            )
        return
    augmentor = cfg.setdefault("augmentor", {})
    if rir:
        # shift_impulse: the direct path's delay is removed, so transcripts stay aligned with the audio
        augmentor["impulse"] = {"prob": float(data_cfg.rir_prob), "manifest_path": str(rir), "shift_impulse": True}
    if noise:
        augmentor["noise"] = {
            "prob": float(data_cfg.noise_prob),
            "manifest_path": str(noise),
            "min_snr_db": snr[0],
            "max_snr_db": snr[1],
            "orig_sr": cfg["sample_rate"],
        }


def check_augmentation(data_cfg: DictConfig) -> tuple[float, float]:
    """The SNR range, after checking the augmentation keys: each manifest names at least one clip that
    exists with a positive duration, ``noise_snr_db`` is ``[min, max]`` with min <= max, and the
    probabilities lie in [0, 1]. Raises :class:`UserError` otherwise."""
    from asr_transfer.errors import UserError

    try:
        low, high = (float(value) for value in data_cfg.get("noise_snr_db", [0.0, 20.0]))
    except (TypeError, ValueError):
        raise UserError(
            f"data.noise_snr_db={data_cfg.get('noise_snr_db')} is not a [min, max] pair of dB values; "
            "write it as data.noise_snr_db=[0,20]"
        ) from None
    if low > high:
        raise UserError(
            f"data.noise_snr_db=[{low:g}, {high:g}] has min > max; give [min, max], e.g. [{high:g}, {low:g}]"
        )
    for key in ("noise_prob", "rir_prob"):
        value = float(data_cfg.get(key, 0.5))
        if not 0.0 <= value <= 1.0:
            raise UserError(f"data.{key}={value:g} is not a probability; give a value from 0 to 1")
    for key in ("noise_manifest", "rir_manifest"):
        if data_cfg.get(key):
            usable_clips(str(data_cfg[key]), f"data.{key}")
    return low, high


def usable_clips(manifest: str, key: str) -> int:
    """How many lines of ``manifest`` name an existing audio file with a positive duration (relative paths
    are the manifest folder's); raises :class:`UserError` when none does."""
    from asr_transfer.errors import UserError

    if not os.path.isfile(manifest):
        raise UserError(f"{key}={manifest} does not exist; build it with asr-transfer prepare-noise FOLDER OUT_DIR")
    usable, lines = 0, 0
    try:
        for entry in read_manifest(manifest, fields=AUDIO_FIELDS):
            lines += 1
            path = str(entry["audio_filepath"])
            path = audio_path(path, manifest)
            if os.path.isfile(path) and os.path.getsize(path) > 0 and float(entry.get("duration") or 0) > 0:
                usable += 1
    except (ValueError, KeyError) as error:
        raise UserError(
            f"{key}={manifest} is not a NeMo manifest ({error}); build it with asr-transfer prepare-noise"
        ) from None
    if usable == 0:
        raise UserError(
            f"{key}={manifest} has no usable clip ({lines} lines; none names an existing audio file with a duration); "
            "build it with asr-transfer prepare-noise FOLDER OUT_DIR"
        )
    return usable


def lhotse_recordings(rir_manifest: str) -> str:
    """A lhotse RecordingSet of the RIR manifest's audio (what NeMo's Lhotse path reads for ``rir_path``),
    written beside it as ``<name>.lhotse_recordings.jsonl.gz`` unless one newer than the manifest is there."""
    from lhotse import Recording, RecordingSet

    out = os.path.splitext(rir_manifest)[0] + ".lhotse_recordings.jsonl.gz"
    if os.path.isfile(out) and os.path.getmtime(out) >= os.path.getmtime(rir_manifest):
        return out
    recordings = []
    for index, entry in enumerate(read_manifest(rir_manifest, fields=AUDIO_FIELDS)):
        path = str(entry["audio_filepath"])
        path = audio_path(path, rir_manifest)
        if os.path.isfile(path):
            recordings.append(Recording.from_file(path, recording_id=f"rir-{index:06d}"))
    RecordingSet.from_recordings(recordings).to_file(out)
    return out


def shuffle_buffer(data_cfg: DictConfig) -> int:
    """Cuts Lhotse mixes before batching: ``data.shar_shuffle_buffer_size`` for shards (already shuffled
    when written), ``data.shuffle_buffer_size`` for manifests."""
    if data_cfg.get("shar_path"):
        return int(data_cfg.shar_shuffle_buffer_size)
    return int(data_cfg.shuffle_buffer_size)


def shar_config(cfg: dict, shar_path: str, rank: int, world_size: int, buffer: int) -> dict | None:
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
            "shuffle_buffer_size": buffer,
        }
    )
    return read_index(shar_path)


def encoder_frames_per_second(model) -> float:
    """Encoder output frames per second of audio, measured on a 10 s silent signal."""
    sample_rate = model_sample_rate(model)
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
        for entry in read_manifest(manifest, fields=TRAINING_FIELDS):
            frames = math.floor(float(entry["duration"]) * frames_per_second)
            needed = ctc_frames_needed(label_ids(model, entry["text"]))
            if frames >= needed:
                fits.append(rebased_entry(entry, manifest, os.path.join(out_dir, f"{name}_fits.json")))
            else:
                dropped += 1
                handle.write(f"{entry['audio_filepath']}\t{entry['duration']}\t{frames}\t{needed}\t{entry['text']}\n")
    kept_manifest = os.path.join(out_dir, f"{name}_fits.json")
    write_manifest(kept_manifest, fits)
    return LengthCheck(len(fits), dropped, kept_manifest, report)
