"""Lhotse Shar shards for multi-GPU, multi-node training, written with lhotse's own ``SharWriter``.

In: a stream of rows (dicts: source audio path, key, text, metadata, listed duration), from a NeMo
manifest through ``asr-transfer shard`` or from prepare-cv's screened training rows through
``prepare-cv --shar N``; a shard count and a seed. Out, in a shard folder ``DIR`` (:func:`shar_files_dir`
and friends name every path):

* ``DIR/shar/cuts.NNNNNN.jsonl.gz`` + ``DIR/shar/recording.NNNNNN.tar``: Lhotse Shar, 16 kHz mono FLAC
  or WAV, nothing else in that folder (so stock ``CutSet.from_shar(in_dir=...)`` and NeMo's
  ``shar_path`` read it as is);
* ``DIR/shar_index.json``: clips and hours per shard, the seed, the world sizes the shard count divides,
  and duration bins for NeMo's bucketing sampler (``bucket_duration_bins``);
* ``DIR/plan/``: which row goes to which shard, and each finished shard's per-row results.

Rows are dealt to shards in blocks of N with a seeded permutation per block (streaming: counts differ by
at most one before audio rejects), and each shard's rows are shuffled with the seed before writing.
Shards are written in parallel, one worker process per shard, into ``plan/`` and moved into ``shar/``
when complete; a shard whose results file matches its plan is skipped on a rerun. Every row ends in a
shard or in the caller's rejects (a decode problem, or the duration filters it passes).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from functools import partial
from pathlib import Path

from asr_transfer.errors import UserError
from asr_transfer.fileio import atomic_open_all, write_json
from asr_transfer.manifests.audio import AUDIO_FORMATS, TARGET_RATE, decode_clip, wav_pcm16_bytes
from asr_transfer.manifests.filters import DurationRules, duration_problem, speech_seconds
from asr_transfer.parallel import ordered_map

SHAR_FORMATS = tuple(sorted(AUDIO_FORMATS))
# Audio in the tars unless --audio-format says otherwise, in `shard` and `prepare-cv --shar` alike: shards
# travel to every node, and FLAC halves them.
DEFAULT_SHARD_FORMAT = "flac"
INDEX_FILE = "shar_index.json"
DEFAULT_BUCKETS = 30
# The defaults of the flags add_shard_arguments adds, by dest: what its parser sets and shard_flags_set compares.
SHARD_FLAG_DEFAULTS = {"world_size": 1, "seed": 0, "buckets": DEFAULT_BUCKETS}


def add_shard_arguments(parser) -> None:
    """The shard flags ``shard`` and ``prepare-cv --shar`` share (the count flag is each command's own)."""
    parser.add_argument(
        "--world-size",
        type=int,
        default=SHARD_FLAG_DEFAULTS["world_size"],
        help="GPUs x nodes the shards are for; the shard count must be a multiple, so every rank reads its own "
        "equal share (default 1)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=SHARD_FLAG_DEFAULTS["seed"],
        help="seed of the shard assignment and order (default 0)",
    )
    parser.add_argument(
        "--buckets",
        type=int,
        default=SHARD_FLAG_DEFAULTS["buckets"],
        help=f"duration buckets to precompute bins for (NeMo's bucket_duration_bins; default {DEFAULT_BUCKETS})",
    )


def shard_flags_set(args) -> list[str]:
    """The shard flags of ``add_shard_arguments`` given values other than their defaults, as ``--flag VALUE``."""
    return [
        f"--{name.replace('_', '-')} {getattr(args, name)}"
        for name, default in SHARD_FLAG_DEFAULTS.items()
        if getattr(args, name) != default
    ]


def shard_options(args, shards: int, count_flag: str = "--shards") -> ShardOptions:
    """``count_flag``: the command's own flag for the shard count, which its error messages name."""
    return ShardOptions(
        shards=shards,
        seed=args.seed,
        audio_format=args.audio_format or DEFAULT_SHARD_FORMAT,  # prepare-cv's flag defaults to None
        world_size=args.world_size,
        buckets=args.buckets,
        count_flag=count_flag,
    )


def shar_files_dir(folder: str | os.PathLike) -> Path:
    """The pure Shar folder inside a shard folder: what NeMo's ``shar_path`` and lhotse read."""
    return Path(folder) / "shar"


def shard_file(folder: str | os.PathLike, field: str, index: int) -> Path:
    suffix = ".jsonl.gz" if field == "cuts" else ".tar"
    return shar_files_dir(folder) / f"{field}.{index:06d}{suffix}"


def index_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / INDEX_FILE


def plan_path(folder: str | os.PathLike, index: int) -> Path:
    return Path(folder) / "plan" / f"shard.{index:06d}.rows.jsonl"


def results_path(folder: str | os.PathLike, index: int) -> Path:
    """Written last, when a shard's files are in place: its presence (with a matching plan) means done."""
    return Path(folder) / "plan" / f"shard.{index:06d}.results.json"


@dataclass(frozen=True)
class ShardOptions:
    shards: int
    seed: int = 0
    audio_format: str = DEFAULT_SHARD_FORMAT
    world_size: int = 1
    buckets: int = DEFAULT_BUCKETS
    count_flag: str = dataclass_field(default="--shards", compare=False)  # `shard --shards`, `prepare-cv --shar`

    def __post_init__(self) -> None:
        flag = self.count_flag
        if self.shards < 1:
            raise UserError(f"{flag} {self.shards}: give at least 1")
        if self.audio_format not in SHAR_FORMATS:
            raise UserError(f"shard audio format {self.audio_format} is unknown; use one of {', '.join(SHAR_FORMATS)}")
        if self.world_size < 1 or self.shards % self.world_size:
            multiple = (self.shards // max(self.world_size, 1) + 1) * max(self.world_size, 1)
            raise UserError(
                f"{flag} {self.shards} is not a multiple of --world-size {self.world_size}, so ranks would read "
                f"unequal data; use a multiple, e.g. {flag} {multiple}"
            )


@dataclass
class ShardedRow:
    """One row's outcome: kept in ``shard`` with ``duration``, or rejected with ``reason``."""

    row: dict  # the planned row: split, reference, source, key, text, metadata, expected_duration
    shard: int
    duration: float | None = None
    reason: str | None = None
    detail: str = ""


class ShardPlan:
    """Deals rows to shards' plan files as they stream by: blocks of ``shards`` rows, a seeded permutation
    of the shards per block, so counts differ by at most one. The plan files appear only when closed
    without an error."""

    def __init__(self, folder: str | os.PathLike, options: ShardOptions) -> None:
        self.options = options
        self.rows = 0
        self._rng = random.Random(options.seed)
        self._order = list(range(options.shards))
        plan_path(folder, 0).parent.mkdir(parents=True, exist_ok=True)
        _allow_open_files(options.shards + 64)
        self._files = atomic_open_all([plan_path(folder, index) for index in range(options.shards)])
        self._handles = self._files.__enter__()

    def add(self, row: dict) -> None:
        position = self.rows % self.options.shards
        if position == 0:
            self._rng.shuffle(self._order)
        self._handles[self._order[position]].write(json.dumps(row, ensure_ascii=False) + "\n")
        self.rows += 1

    def __enter__(self) -> ShardPlan:
        return self

    def __exit__(self, *exc_info) -> bool:
        return bool(self._files.__exit__(*exc_info))


def _allow_open_files(count: int) -> None:
    """Raise this process's open-file limit to ``count`` (one plan file per shard is open at once)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count:
        if hard != resource.RLIM_INFINITY and hard < count:
            raise UserError(f"{count - 64} shards need {count} open files but the limit is {hard}; give fewer shards")
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))


def _plan_digest(planned: bytes, options: ShardOptions, rules: DurationRules) -> str:
    digest = hashlib.sha256(planned)
    # what a shard's bytes depend on; --world-size and --buckets change only checks and the index
    written_by = [options.shards, options.seed, options.audio_format, asdict(rules)]
    digest.update(json.dumps(written_by, sort_keys=True).encode())
    return digest.hexdigest()


def _make_cut(row: dict, samples, duration: float):
    from lhotse import AudioSource, MonoCut, Recording, SupervisionSegment

    # Built directly rather than with Recording.from_bytes, which decodes the bytes once more to learn
    # what is already known; SharWriter decodes them when it writes the shard.
    recording = Recording(
        id=row["key"],
        sources=[AudioSource(type="memory", channels=[0], source=wav_pcm16_bytes(samples))],
        sampling_rate=TARGET_RATE,
        num_samples=samples.size,
        duration=duration,
    )
    supervision = SupervisionSegment(
        id=row["key"],
        recording_id=row["key"],
        start=0.0,
        duration=duration,
        channel=0,
        text=row["text"],
        custom=row.get("metadata") or None,
    )
    return MonoCut(
        id=row["key"], start=0.0, duration=duration, channel=0, recording=recording, supervisions=[supervision]
    )


def _decoded(row: dict, rules: DurationRules) -> tuple:
    """(samples, duration, None, "") for a usable clip, else (None, duration or None, reason, detail)."""
    samples, problem = decode_clip(row["source"])
    if problem:
        return None, None, problem.reason, problem.detail
    duration = samples.size / TARGET_RATE
    speech = partial(speech_seconds, samples)
    reason = duration_problem(rules, row["text"], duration, row.get("expected_duration"), speech)
    if reason:
        return None, duration, reason, f"{duration:.2f}s, {len(row['text'])} chars"
    return samples, duration, None, ""


def write_shard(task: tuple) -> list[ShardedRow]:
    """Worker side: decode, filter and write one shard's rows (seeded order) through ``SharWriter``."""
    from lhotse.shar import SharWriter

    folder, index, options, rules = task
    folder = Path(folder)
    plan = plan_path(folder, index)
    planned = plan.read_bytes()
    digest = _plan_digest(planned, options, rules)
    done = results_path(folder, index)
    if done.is_file() and all(shard_file(folder, field, index).is_file() for field in ("cuts", "recording")):
        record = json.loads(done.read_text(encoding="utf-8"))
        if record["plan_digest"] == digest:
            return [ShardedRow(**row) for row in record["rows"]]
    rows = [json.loads(line) for line in planned.decode("utf-8").splitlines() if line]
    random.Random(options.seed * 1_000_003 + index).shuffle(rows)
    staging = plan.parent / f"staging.{index:06d}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    outcomes = []
    with SharWriter(
        staging, fields={"recording": options.audio_format}, shard_size=None, shard_suffix=f".{index:06d}"
    ) as writer:
        for row in rows:
            samples, duration, reason, detail = _decoded(row, rules)
            outcomes.append(ShardedRow(row, index, duration, reason, detail))
            if reason is None:
                writer.write(_make_cut(row, samples, duration))
    if not any(outcome.reason is None for outcome in outcomes):
        _write_empty_shard(staging, index)
    final_dir = shar_files_dir(folder)
    final_dir.mkdir(parents=True, exist_ok=True)
    for field in ("recording", "cuts"):  # cuts last: stock readers start from the cuts files
        target = shard_file(folder, field, index)
        os.replace(staging / target.name, target)
    shutil.rmtree(staging, ignore_errors=True)
    write_json(done, {"plan_digest": digest, "rows": [asdict(outcome) for outcome in outcomes]})
    return outcomes


def _write_empty_shard(staging: Path, index: int) -> None:
    """A shard whose every row was rejected still exists, empty: lhotse's writers create files only on
    the first cut, and readers expect shards 0..N-1 without gaps."""
    import gzip
    import tarfile

    with gzip.open(staging / shard_file(staging, "cuts", index).name, "wt"):
        pass
    with tarfile.open(staging / shard_file(staging, "recording", index).name, "w"):
        pass


def remove_extra_shards(folder: str | os.PathLike, shards: int) -> None:
    """Shards numbered ``shards`` or more, left by an earlier run with a larger count, and staging leftovers."""
    for directory in (shar_files_dir(folder), plan_path(folder, 0).parent):
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            parts = path.name.split(".")
            stale = ".tmp-" in path.name or (len(parts) > 1 and parts[1].isdigit() and int(parts[1]) >= shards)
            if stale:
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def write_shards(
    folder: str | os.PathLike, options: ShardOptions, rules: DurationRules, jobs: int
) -> Iterator[ShardedRow]:
    """Write every planned shard (in parallel, finished ones skipped); yield each row's outcome."""
    import lhotse  # noqa: F401  (once here, not in every forked worker: it imports torch, ~2 s)

    remove_extra_shards(folder, options.shards)
    tasks = ((os.fspath(folder), index, options, rules) for index in range(options.shards))
    for outcomes in ordered_map(write_shard, tasks, jobs=jobs, chunk_size=1, window_per_job=1):
        yield from outcomes


def duration_bins(durations: list[float], buckets: int) -> list[float]:
    """Bucket boundaries holding equal audio time each (lhotse's ``estimate_duration_buckets``)."""
    from types import SimpleNamespace

    from lhotse.dataset.sampling.dynamic_bucketing import estimate_duration_buckets

    if len(durations) < max(buckets, 2):
        return []
    bins = estimate_duration_buckets([SimpleNamespace(duration=value) for value in durations], buckets)
    return [round(float(value), 3) for value in bins]


def write_index(folder: str | os.PathLike, options: ShardOptions, kept: list[tuple[int, float]]) -> dict:
    """``shar_index.json`` from the (shard, duration) of every kept clip: per-shard clips and hours,
    divisors of the shard count, bucketing bins."""
    clips = [0] * options.shards
    seconds = [0.0] * options.shards
    for shard, duration in kept:
        clips[shard] += 1
        seconds[shard] += duration
    durations = [duration for _, duration in kept]
    index = {
        "format": "lhotse_shar",
        "shar_dir": shar_files_dir(".").as_posix(),
        "shards": options.shards,
        "seed": options.seed,
        "audio_format": options.audio_format,
        "clips": sum(clips),
        "hours": round(sum(seconds) / 3600, 4),
        "clips_per_shard": clips,
        "hours_per_shard": [round(value / 3600, 4) for value in seconds],
        "world_sizes": [size for size in range(1, options.shards + 1) if options.shards % size == 0],
        "bucket_duration_bins": duration_bins(durations, options.buckets),
    }
    write_json(index_path(folder), index)
    return index


def read_index(folder: str | os.PathLike) -> dict | None:
    path = index_path(folder)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def shard_fields(folder: str | os.PathLike) -> dict[str, list[str]]:
    """The Shar files of a shard folder (ours, or a bare Shar folder), by field, in shard order."""
    folder = Path(folder)
    files_dir = shar_files_dir(folder) if shar_files_dir(folder).is_dir() else folder
    cuts = sorted(files_dir.glob("cuts.*.jsonl.gz"))
    if not cuts:
        raise UserError(
            f"{folder} holds no Lhotse Shar shards (cuts.*.jsonl.gz); write them with asr-transfer shard or "
            f"prepare-cv --shar N"
        )
    fields = {"cuts": [str(path) for path in cuts]}
    recordings = sorted(files_dir.glob("recording.*.tar"))
    if len(recordings) != len(cuts):
        raise UserError(f"{files_dir}: {len(cuts)} cuts files but {len(recordings)} recording tars; rerun the sharding")
    fields["recording"] = [str(path) for path in recordings]
    return fields


def rank_fields(fields: dict[str, list[str]], rank: int, world_size: int) -> dict[str, list[str]]:
    """The shards one rank reads: every ``world_size``-th from ``rank``, so ranks never share a clip."""
    shards = len(fields["cuts"])
    if shards % world_size:
        raise UserError(
            f"{shards} shards cannot be split evenly over {world_size} ranks (devices x nodes); reshard with "
            f"--shards a multiple of {world_size}"
        )
    return {field: paths[rank::world_size] for field, paths in fields.items()}
