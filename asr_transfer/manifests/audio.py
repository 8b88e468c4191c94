"""Decoding, resampling and writing one clip: the per-clip work of every manifest builder.

In: a source audio file in any format soundfile reads (MP3 included, through its bundled libsndfile),
at any rate and channel count. Out: 16 kHz mono 16-bit WAV or FLAC written atomically, and the
duration measured from the decoded samples, or a reject reason when the clip cannot be used.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, replace

import numpy as np
import soundfile
import soxr

from asr_transfer.fileio import atomic_path

# The one sample rate of this package: what every builder writes, and what a model whose config names
# none is taken to read (the rate of every base in bases.yaml).
TARGET_RATE = 16000
AUDIO_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16")}
DEFAULT_CLIP_FORMAT = "wav"  # clip files (prepare-*): the fastest to decode in training and evaluation

REJECT_MISSING = "missing_clip"
REJECT_EMPTY_FILE = "empty_clip"
REJECT_UNDECODABLE = "undecodable_clip"


def model_sample_rate(model) -> int:
    """The sample rate (Hz) a NeMo model reads: its config's ``sample_rate``, else :data:`TARGET_RATE`."""
    return int(model.cfg.get("sample_rate", TARGET_RATE))


@dataclass(frozen=True)
class ClipResult:
    duration: float | None
    reason: str | None = None
    detail: str = ""
    converted: bool = False  # set by keep_or_convert_clip when the source could not be kept as it is


def decode_mono(path: str, target_rate: int = TARGET_RATE) -> np.ndarray:
    """Decode ``path`` to float32 mono samples at ``target_rate`` (soxr high quality)."""
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if rate != target_rate:
        mono = soxr.resample(mono, rate, target_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def source_problem(path: str) -> ClipResult | None:
    try:
        size = os.path.getsize(path)
    except OSError:
        return ClipResult(None, REJECT_MISSING)
    return ClipResult(None, REJECT_EMPTY_FILE) if size == 0 else None


def decode_clip(source: str) -> tuple[np.ndarray | None, ClipResult | None]:
    """``source`` as 16 kHz mono samples, or the reject (missing, empty, undecodable) that stops it."""
    problem = source_problem(source)
    if problem:
        return None, problem
    try:
        samples = decode_mono(source)
    except Exception as error:  # libsndfile raises several types for corrupt input
        return None, ClipResult(None, REJECT_UNDECODABLE, _short(error))
    if samples.size == 0:
        return None, ClipResult(None, REJECT_UNDECODABLE, "no audio frames")
    return samples, None


def convert_clip(source: str, destination: str, audio_format: str = DEFAULT_CLIP_FORMAT) -> ClipResult:
    """Write ``source`` as 16 kHz mono ``destination``; a finished destination is reused, not redone."""
    if os.path.isfile(destination):
        info = soundfile.info(destination)
        return ClipResult(info.frames / info.samplerate)
    samples, problem = decode_clip(source)
    if problem:
        return problem
    with atomic_path(destination) as tmp:
        write_audio(tmp, samples, audio_format)
    return ClipResult(samples.size / TARGET_RATE)


def write_audio(path: str, samples: np.ndarray, audio_format: str) -> None:
    if audio_format == "wav":
        write_wav_pcm16(path, samples)
        return
    container, subtype = AUDIO_FORMATS[audio_format]
    soundfile.write(path, samples, TARGET_RATE, format=container, subtype=subtype)


def write_wav_pcm16(path: str, samples: np.ndarray, rate: int = TARGET_RATE) -> None:
    """A mono 16-bit WAV written directly: libsndfile's writer fsyncs every file on close, which
    cost a third of the conversion time, and a crash is already covered by the atomic rename.
    ``samples`` is used as scratch space (see :func:`pcm16`)."""
    pcm = pcm16(samples)
    with open(path, "wb") as handle:
        handle.write(wav_header(pcm.nbytes, rate))
        handle.write(memoryview(pcm))


def wav_pcm16_bytes(samples: np.ndarray, rate: int = TARGET_RATE) -> bytes:
    """The bytes of a mono 16-bit WAV file; ``samples`` is used as scratch space (see :func:`pcm16`)."""
    pcm = pcm16(samples)
    return wav_header(pcm.nbytes, rate) + pcm.tobytes()


def pcm16(samples: np.ndarray) -> np.ndarray:
    """16-bit samples. A writeable float ``samples`` is scaled, rounded and clipped in place, so it is
    overwritten: each fresh clip-sized temporary cost page faults (kernel time) that showed up as a
    quarter of prepare-cv's time."""
    scaled = np.multiply(samples, 32767.0, out=samples if samples.flags.writeable else None)
    np.rint(scaled, out=scaled)
    np.clip(scaled, -32768, 32767, out=scaled)
    return scaled.astype("<i2")


def wav_header(data_bytes: int, rate: int = TARGET_RATE) -> bytes:
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,
        1,
        rate,
        rate * 2,
        2,
        16,
        b"data",
        data_bytes,
    )


def keep_or_convert_clip(source: str, destination: str, audio_format: str = DEFAULT_CLIP_FORMAT) -> ClipResult:
    """``source`` measured and kept when it is 16 kHz mono, else written as 16 kHz mono ``destination``:
    NeMo's dataset loaders pass each channel of a multi-channel file on as a separate signal (and crash
    on it), so ``--no-convert`` cannot keep such a file; other rates are converted too, so that every
    clip of the manifest is 16 kHz mono."""
    problem = source_problem(source)
    if problem:
        return problem
    try:
        info = soundfile.info(source)
    except Exception as error:
        return ClipResult(None, REJECT_UNDECODABLE, _short(error))
    if info.channels == 1 and info.samplerate == TARGET_RATE:
        return measure_clip(source)
    result = convert_clip(source, destination, audio_format)
    return replace(result, converted=result.reason is None)


def channel_count(path: str) -> int:
    with soundfile.SoundFile(path) as handle:
        return handle.channels


def measure_clip(source: str) -> ClipResult:
    """Decode ``source`` fully (to prove it decodes) and return its duration; nothing is written."""
    problem = source_problem(source)
    if problem:
        return problem
    try:
        samples, rate = soundfile.read(source, dtype="float32", always_2d=True)
    except Exception as error:
        return ClipResult(None, REJECT_UNDECODABLE, _short(error))
    if samples.shape[0] == 0:
        return ClipResult(None, REJECT_UNDECODABLE, "no audio frames")
    return ClipResult(samples.shape[0] / rate)


def _short(error: Exception) -> str:
    return " ".join(str(error).split())[:200]
