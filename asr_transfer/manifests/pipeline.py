"""The manifest builder shared by every input kind: normalize, convert, filter, account, write.

In: a stream of :class:`SourceItem` (one per input row: split, audio path, raw transcript, metadata),
a :class:`~asr_transfer.languages.Language` and :class:`BuildOptions`. Out, in ``OUT_DIR``:
``<split>.json`` NeMo manifests, ``clips/`` (16 kHz mono audio; with shard options the training split goes
to Lhotse Shar shards in ``train_shar/`` instead), ``rejects.tsv`` (split, path, reason, detail) and
``summary.json``. Every input row ends in a manifest or in ``rejects.tsv``; for every split
``rows_in == kept + rejected``. Audio is converted in parallel worker processes, streaming: memory does
not grow with the corpus beyond one key per clip for the duplicate check.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tqdm import tqdm

from asr_transfer.errors import UserError
from asr_transfer.fileio import atomic_open, atomic_open_all, manifest_line, remove_stale_temporaries, write_json
from asr_transfer.languages import Language
from asr_transfer.layout import rejects_path, summary_path
from asr_transfer.manifests.audio import (
    AUDIO_FORMATS,
    DEFAULT_CLIP_FORMAT,
    TARGET_RATE,
    ClipResult,
    convert_clip,
    keep_or_convert_clip,
)
from asr_transfer.manifests.filters import DurationRules, duration_problem, file_speech_seconds
from asr_transfer.manifests.shar import ShardedRow, ShardOptions, ShardPlan, write_index, write_shards
from asr_transfer.parallel import default_jobs, ordered_map

# Reject reasons of the rows themselves, shared by every builder (prepare-cv, prepare-folder, shard); the
# audio's are in asr_transfer.manifests.audio and filters.
REJECT_MALFORMED = "malformed_row"
REJECT_DUPLICATE = "duplicate_path"

SHARDED_SPLIT = "train"  # with --shar, the split written as shards


@dataclass(frozen=True)
class SourceItem:
    split: str
    reference: str  # the path as the input wrote it, for rejects.tsv
    source: str  # absolute path of the input audio
    key: str  # output name below clips/, without extension; also the duplicate key
    text: str
    metadata: dict = field(default_factory=dict)
    problem: str = ""
    expected_duration: float | None = None


@dataclass
class BuildOptions:
    min_duration: float = 0.5
    max_duration: float = 20.0
    min_chars_per_second: float | None = None  # None: the language file's value
    max_chars_per_second: float | None = None
    audio_format: str = DEFAULT_CLIP_FORMAT
    jobs: int = field(default_factory=default_jobs)
    convert: bool = True  # False: keep the source audio, only validate it
    duration_tolerance: float = 0.5  # seconds of disagreement with a listed duration before rejecting
    progress: bool = True

    def __post_init__(self) -> None:
        if self.audio_format not in AUDIO_FORMATS:
            raise UserError(f"--audio-format {self.audio_format} is unknown; use one of {', '.join(AUDIO_FORMATS)}")
        if self.min_duration >= self.max_duration:
            raise UserError("--min-duration is not below --max-duration; lower the one or raise the other")


def clip_output_path(out_dir: str | os.PathLike, key: str, audio_format: str) -> str:
    """Where a clip's converted audio lives; both the resume check and the writer use this."""
    return os.path.join(os.path.abspath(out_dir), "clips", f"{key}.{audio_format}")


def train_shar_dir(out_dir: str | os.PathLike) -> Path:
    """Where ``prepare-cv --shar N`` writes the training split's shard folder (``data.shar_path``)."""
    return Path(out_dir) / "train_shar"


def manifest_path(out_dir: str | os.PathLike, split: str) -> str:
    return os.path.join(os.fspath(out_dir), f"{split}.json")


def _clip_task(task: tuple) -> ClipResult:
    """Worker side: convert one clip (with --no-convert: measure it, converting only a clip that is not
    16 kHz mono). Only paths go out and the result comes back: the row itself waits in the main process,
    where pickling it both ways cost more than writing the clip."""
    source, destination, audio_format, convert = task
    if not convert:
        return keep_or_convert_clip(source, destination, audio_format)
    return convert_clip(source, destination, audio_format)


class _SplitStats:
    def __init__(self) -> None:
        self.rows_in = 0
        self.kept = 0
        self.seconds = 0.0
        self.rejected: Counter = Counter()
        self.characters: Counter = Counter()

    def as_dict(self) -> dict:
        return {
            "rows_in": self.rows_in,
            "kept": self.kept,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "hours": round(self.seconds / 3600, 4),
            "characters": dict(sorted(self.characters.items())),
        }


class ManifestBuilder:
    """With ``shar``, the training split goes to Lhotse Shar shards in ``<out_dir>/train_shar`` straight from
    the decoder (no per-clip file); its manifest then names each clip inside its shard (``shard_id``, NeMo's
    tarred-manifest convention) and serves text-only steps (tokenizer, LM)."""

    def __init__(
        self,
        out_dir: str | os.PathLike,
        language: Language,
        options: BuildOptions,
        splits: list[str],
        shar: ShardOptions | None = None,
    ):
        self.out_dir = Path(out_dir)
        self.language = language
        self.options = options
        self.splits = splits
        self.shar = shar
        self.stats = {split: _SplitStats() for split in splits}
        self.min_cps = _first_set(options.min_chars_per_second, language.min_chars_per_second)
        self.max_cps = _first_set(options.max_chars_per_second, language.max_chars_per_second)
        self.rules = DurationRules(
            options.min_duration, options.max_duration, self.min_cps, self.max_cps, options.duration_tolerance
        )
        self._seen_keys: set[str] = set()
        self._rejects = None
        self._manifests: dict = {}
        self._bar = None
        self._converted_anyway = 0  # --no-convert clips that were not 16 kHz mono

    def run(self, items: Iterable[SourceItem], total: int | None = None, extra_summary: dict | None = None) -> dict:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.out_dir)
        started = time.time()
        with (
            atomic_open(rejects_path(self.out_dir)) as rejects,
            atomic_open_all([manifest_path(self.out_dir, split) for split in self.splits]) as manifests,
        ):
            self._rejects = rejects
            self._manifests = dict(zip(self.splits, manifests, strict=True))
            rejects.write("split\tpath\treason\tdetail\n")
            self._bar = tqdm(total=total, unit="clip", disable=not self.options.progress, desc="clips")
            accepted = self._screen(items)
            if self.shar:
                extra_summary = {**(extra_summary or {}), "train_shar": self._run_sharded(accepted)}
            else:
                self._convert(accepted)
            self._bar.close()
        summary = self._summary(time.time() - started, extra_summary or {})
        write_json(summary_path(self.out_dir), summary)
        return summary

    def _convert(self, accepted: Iterator[tuple[SourceItem, str]]) -> None:
        waiting: deque = deque()  # rows whose clips are in flight, in order (ordered_map keeps the order)
        tasks = self._tasks(accepted, waiting)
        for result in ordered_map(_clip_task, tasks, jobs=self.options.jobs, chunk_size=32):
            item, text = waiting.popleft()
            self._finish(item, text, result)
            self._bar.update(1)

    def _run_sharded(self, accepted: Iterator[tuple[SourceItem, str]]) -> dict:
        """Held-out splits become clips as usual; training rows are planned, then written shard by shard."""
        folder = train_shar_dir(self.out_dir)
        with ShardPlan(folder, self.shar) as plan:
            self._convert(self._divert_training_rows(accepted, plan))
        kept = []
        for outcome in write_shards(folder, self.shar, self.rules, self.options.jobs):
            self._finish_sharded(outcome)
            if outcome.reason is None:
                kept.append((outcome.shard, outcome.duration))
            self._bar.update(1)
        index = write_index(folder, self.shar, kept)
        return {"dir": str(folder), "shards": index["shards"], "clips": index["clips"], "hours": index["hours"]}

    def _divert_training_rows(self, accepted, plan: ShardPlan) -> Iterator[tuple[SourceItem, str]]:
        for item, text in accepted:
            if item.split != SHARDED_SPLIT:
                yield item, text
                continue
            plan.add(
                {
                    "split": item.split,
                    "reference": item.reference,
                    "source": item.source,
                    "key": item.key,
                    "text": text,
                    "metadata": item.metadata,
                    "expected_duration": item.expected_duration,
                }
            )

    def _finish_sharded(self, outcome: ShardedRow) -> None:
        row = outcome.row
        if outcome.reason:
            self._write_reject(row["split"], row["reference"], outcome.reason, outcome.detail)
            return
        entry = {
            "audio_filepath": f"{row['key']}.{self.shar.audio_format}",
            "duration": round(outcome.duration, 3),
            "text": row["text"],
            "shard_id": outcome.shard,
            **row["metadata"],
        }
        self._account(row["split"], entry)

    def _screen(self, items: Iterable[SourceItem]) -> Iterator[tuple[SourceItem, str]]:
        """Reject rows on text and bookkeeping alone, before any audio work."""
        for item in items:
            stats = self.stats[item.split]
            stats.rows_in += 1
            if item.problem:
                reason, detail = REJECT_MALFORMED, item.problem
            elif item.key in self._seen_keys:
                reason, detail = REJECT_DUPLICATE, "listed earlier"
            else:
                self._seen_keys.add(item.key)
                normalized = self.language.normalize(item.text)
                if normalized.text is not None:
                    yield item, normalized.text
                    continue
                reason, detail = normalized.reason, normalized.detail
            self._reject(item, reason, detail)
            self._bar.update(1)

    def _tasks(self, accepted: Iterator[tuple[SourceItem, str]], waiting: deque) -> Iterator[tuple]:
        audio_format = self.options.audio_format
        for item, text in accepted:
            destination = clip_output_path(self.out_dir, item.key, audio_format)
            waiting.append((item, text))
            yield (item.source, destination, audio_format, self.options.convert)

    def _finish(self, item: SourceItem, text: str, result: ClipResult) -> None:
        if result.reason:
            self._reject(item, result.reason, result.detail)
            return
        duration = result.duration
        converted = self.options.convert or result.converted
        written = clip_output_path(self.out_dir, item.key, self.options.audio_format) if converted else None
        speech = partial(file_speech_seconds, written or item.source)
        reason = duration_problem(self.rules, text, duration, item.expected_duration, speech)
        if reason:
            self._reject(item, reason, f"{duration:.2f}s, {len(text)} chars")
            return
        entry = {
            "audio_filepath": written or item.source,
            "duration": round(duration, 3),
            "text": text,
            **item.metadata,
        }
        self._converted_anyway += result.converted
        self._account(item.split, entry)

    def _account(self, split: str, entry: dict) -> None:
        self._manifests[split].write(manifest_line(entry))
        stats = self.stats[split]
        stats.kept += 1
        stats.seconds += entry["duration"]
        stats.characters.update(entry["text"])

    def _reject(self, item: SourceItem, reason: str, detail: str = "") -> None:
        self._write_reject(item.split, item.reference, reason, detail)

    def _write_reject(self, split: str, reference: str, reason: str, detail: str = "") -> None:
        self.stats[split].rejected[reason] += 1
        clean_detail = " ".join(detail.split())
        self._rejects.write(f"{split}\t{reference}\t{reason}\t{clean_detail}\n")

    def _summary(self, seconds: float, extra: dict) -> dict:
        splits = {split: stats.as_dict() for split, stats in self.stats.items()}
        inventory: Counter = Counter()
        for stats in self.stats.values():
            inventory.update(stats.characters)
        rows_in = sum(stats.rows_in for stats in self.stats.values())
        return {
            "language": self.language.code,
            "text_options": list(self.language.enabled_options),
            "rows_in": rows_in,
            "kept": sum(stats.kept for stats in self.stats.values()),
            "rejected": sum(sum(stats.rejected.values()) for stats in self.stats.values()),
            "splits": splits,
            "character_inventory": dict(sorted(inventory.items())),
            "filters": {
                "min_duration": self.options.min_duration,
                "max_duration": self.options.max_duration,
                "min_chars_per_second": self.min_cps,
                "max_chars_per_second": self.max_cps,
            },
            "audio": {
                "format": self.options.audio_format,
                "converted": self.options.convert,
                "rate": TARGET_RATE,
                **({} if self.options.convert else {"converted_not_16k_mono": self._converted_anyway}),
            },
            "seconds": round(seconds, 2),
            "clips_per_second": round(rows_in / seconds, 2) if seconds > 0 else None,
            **extra,
        }


def _first_set(*values):
    return next((value for value in values if value is not None), None)
