"""The duration filters every builder applies once a clip is decoded (prepare-cv, prepare-folder, shards).

In: the rules (bounds on seconds and characters per second, tolerance against a listed duration), a
transcript and the decoded duration. Out: the reject reason, or None when the clip passes.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def duration_problem(rules: DurationRules, text: str, duration: float, expected: float | None) -> str | None:
    """The reject reason of a clip of ``duration`` seconds saying ``text``, or None when it passes."""
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
        return REJECT_TOO_SLOW
    return None
