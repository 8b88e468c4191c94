"""The duration filters every builder applies once a clip is decoded (prepare-cv, prepare-folder, shards).

In: the rules (bounds on seconds and characters per second, tolerance against a listed duration), a
transcript, the decoded duration and, for the lower bound on characters per second, the seconds of speech
(:func:`speech_seconds`). Out: the reject reason, or None when the clip passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from asr_transfer.manifests.audio import TARGET_RATE, decode_clip

REJECT_TOO_SHORT = "too_short"
REJECT_TOO_LONG = "too_long"
REJECT_TOO_FAST = "too_many_chars_per_second"
REJECT_TOO_SLOW = "too_few_chars_per_second"
REJECT_DURATION_MISMATCH = "duration_mismatch"


@dataclass(frozen=True)
class DurationRules:
    """The duration filters a row must pass after decoding (None: no bound)."""

    min_duration: float | None = None
    max_duration: float | None = None
    min_chars_per_second: float | None = None
    max_chars_per_second: float | None = None
    tolerance: float = 0.5  # seconds of disagreement with a listed duration before rejecting


def duration_problem(
    rules: DurationRules,
    text: str,
    duration: float,
    expected: float | None,
    speech: Callable[[], float | None] | None = None,
) -> str | None:
    """The reject reason of a clip of ``duration`` seconds saying ``text``, or None when it passes.

    ``speech`` gives the clip's seconds of speech (None: none found); it is called only for a clip the
    lower bound on characters per second would reject, as it decodes audio."""
    if expected is not None and abs(duration - expected) > max(rules.tolerance, 0.1 * expected):
        return REJECT_DURATION_MISMATCH
    if rules.min_duration is not None and duration < rules.min_duration:
        return REJECT_TOO_SHORT
    if rules.max_duration is not None and duration > rules.max_duration:
        return REJECT_TOO_LONG
    chars_per_second = len(text) / duration
    if rules.max_chars_per_second and chars_per_second > rules.max_chars_per_second:
        return REJECT_TOO_FAST
    if rules.min_chars_per_second and chars_per_second < rules.min_chars_per_second:
        # The bound is there for audio that does not say its text, not for one short word between the
        # pauses a speaker leaves before and after it ("sí", 2.7 s): it holds for the speech alone.
        spoken = speech() if speech else None
        if not spoken or len(text) / spoken < rules.min_chars_per_second:
            return REJECT_TOO_SLOW
    return None


SPEECH_FRAME_SECONDS = 0.01
SPEECH_ABOVE_FLOOR_DB = 10.0  # a frame is speech this far above the quietest tenth of the clip ...
SPEECH_BELOW_PEAK_DB = (20.0, 40.0)  # ... the threshold kept this far below the loudest frame


def speech_seconds(samples: np.ndarray, rate: int = TARGET_RATE) -> float | None:
    """Seconds from the first to the last frame loud enough to be speech, or None when nothing stands out
    of the noise floor (a silent or noise-only clip is measured whole, and the bound still catches it).
    The threshold follows each clip's own floor and peak, as recording levels vary by tens of dB."""
    size = int(rate * SPEECH_FRAME_SECONDS)
    frames = -(-samples.size // size)
    if frames == 0:
        return None
    padded = np.zeros(frames * size, dtype=np.float64)
    padded[: samples.size] = samples
    level = 10 * np.log10(np.mean(padded.reshape(frames, size) ** 2, axis=1) + 1e-12)
    peak, floor = level.max(), np.percentile(level, 10)
    highest, lowest = (peak - db for db in SPEECH_BELOW_PEAK_DB)
    if floor > highest:
        return None
    threshold = min(max(floor + SPEECH_ABOVE_FLOOR_DB, lowest), highest)
    active = np.flatnonzero(level >= threshold)
    return (active[-1] - active[0] + 1) * size / rate


def file_speech_seconds(path: str) -> float | None:
    """:func:`speech_seconds` of an audio file, or None when it does not decode."""
    samples, problem = decode_clip(path)
    return None if problem else speech_seconds(samples)
