"""``asr-transfer manifest stats | validate | merge | subset``: utilities over NeMo manifests.

In: one or more NeMo manifests. Out: ``stats`` prints (or writes as JSON) counts, hours, durations,
speakers and the character inventory; ``validate`` checks every line (fields, audio present and
readable, duration, characters) and exits 1 on problems; ``merge`` mixes manifests with weights
(0.2 keeps a random fifth, 2 repeats every line twice); ``subset --hours H --seed S`` draws a random
subset of H hours, nested for the same seed (a 1 h subset lies inside the 2 h one).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
from collections import Counter

import soundfile

from asr_transfer.fileio import read_manifest, write_json, write_manifest
from asr_transfer.languages import UnknownLanguage, load_language

REQUIRED_FIELDS = ("audio_filepath", "duration", "text")


def manifest_stats(path: str) -> dict:
    durations, characters, speakers = [], Counter(), set()
    for entry in read_manifest(path):
        durations.append(float(entry["duration"]))
        characters.update(entry["text"])
        if entry.get("speaker"):
            speakers.add(entry["speaker"])
    total = sum(durations)
    return {
        "manifest": path,
        "utterances": len(durations),
        "hours": round(total / 3600, 4),
        "duration_min": round(min(durations), 3) if durations else None,
        "duration_mean": round(total / len(durations), 3) if durations else None,
        "duration_max": round(max(durations), 3) if durations else None,
        "speakers": len(speakers),
        "characters": dict(characters.most_common()),
    }


def _audio_problem(path: str, manifest_dir: str) -> str | None:
    full = path if os.path.isabs(path) else os.path.join(manifest_dir, path)
    if not os.path.isfile(full):
        return "audio file missing"
    try:
        soundfile.info(full)
    except Exception as error:  # libsndfile raises several types
        return f"audio unreadable ({' '.join(str(error).split())[:80]})"
    return None


def validate_manifest(path: str, lang: str | None = None, check_audio: bool = True) -> list[str]:
    """Problems found, one string per bad line (empty when the manifest is sound)."""
    language = load_language(lang) if lang else None
    manifest_dir = os.path.dirname(os.path.abspath(path))
    problems = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                problems.append(f"{where}: not JSON ({error.msg})")
                continue
            missing = [name for name in REQUIRED_FIELDS if name not in entry]
            if missing:
                problems.append(f"{where}: missing {', '.join(missing)}")
                continue
            duration = entry["duration"]
            if not isinstance(duration, (int, float)) or not math.isfinite(duration) or duration <= 0:
                problems.append(f"{where}: duration {duration!r} is not a positive number")
            if not str(entry["text"]).strip():
                problems.append(f"{where}: empty text")
            if language:
                outside = sorted({char for char in entry["text"] if not language.allows(char)})
                if outside:
                    problems.append(f"{where}: characters outside the {lang} alphabet: {''.join(outside)!r}")
            if check_audio:
                audio_problem = _audio_problem(entry["audio_filepath"], manifest_dir)
                if audio_problem:
                    problems.append(f"{where}: {audio_problem}: {entry['audio_filepath']}")
    return problems


def merge_manifests(paths: list[str], weights: list[float], out: str, seed: int = 0) -> int:
    if len(weights) != len(paths):
        raise ValueError(f"give one weight per manifest ({len(paths)} manifests, {len(weights)} weights)")
    rng = random.Random(seed)
    merged = []
    for path, weight in zip(paths, weights, strict=True):
        if weight < 0:
            raise ValueError(f"weight {weight} for {path} is negative")
        entries = list(read_manifest(path))
        whole, fraction = int(weight), weight - int(weight)
        merged.extend(entries * whole)
        merged.extend(rng.sample(entries, round(fraction * len(entries))))
    rng.shuffle(merged)
    return write_manifest(out, merged)


def subset_manifest(path: str, hours: float, out: str, seed: int = 0) -> dict:
    """A random subset of about ``hours`` hours; with one seed, smaller subsets nest in larger ones."""
    entries = list(read_manifest(path))
    random.Random(seed).shuffle(entries)
    budget, taken, chosen = hours * 3600, 0.0, []
    for entry in entries:
        if taken >= budget:
            break
        chosen.append(entry)
        taken += float(entry["duration"])
    available = sum(float(entry["duration"]) for entry in entries) / 3600
    if hours > available:
        print(f"warning: {path} holds only {available:.3f} h; the subset is all of it", file=sys.stderr)
    write_manifest(out, chosen)
    return {"utterances": len(chosen), "hours": round(taken / 3600, 4)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr-transfer manifest", description=__doc__.split("\n\n")[1])
    commands = parser.add_subparsers(dest="command", required=True)
    stats = commands.add_parser("stats", help="counts, hours, durations, speakers, characters")
    stats.add_argument("manifests", nargs="+")
    stats.add_argument("--json", help="also write the statistics to this JSON file")
    validate = commands.add_parser("validate", help="check every line; exit 1 when a problem is found")
    validate.add_argument("manifests", nargs="+")
    validate.add_argument("--lang", help="also check that text uses only this language's characters")
    validate.add_argument("--no-audio", action="store_true", help="do not open the audio files")
    merge = commands.add_parser("merge", help="mix manifests with weights (e.g. new domain 1, old domain 0.2)")
    merge.add_argument("manifests", nargs="+")
    merge.add_argument("--weights", type=float, nargs="+", help="one per manifest (default 1 each)")
    merge.add_argument("--out", required=True)
    merge.add_argument("--seed", type=int, default=0)
    subset = commands.add_parser("subset", help="random subset of H hours, for data-budget experiments")
    subset.add_argument("manifest")
    subset.add_argument("--hours", type=float, required=True)
    subset.add_argument("--seed", type=int, default=0)
    subset.add_argument("--out", required=True)
    return parser


def _print_stats(stats: dict) -> None:
    print(
        f"{stats['manifest']}: {stats['utterances']} utterances, {stats['hours']:.3f} h, "
        f"duration {stats['duration_min']}-{stats['duration_max']} s (mean {stats['duration_mean']}), "
        f"{stats['speakers']} speakers, {len(stats['characters'])} characters"
    )
    print("  characters: " + " ".join(f"{char!r}:{count}" for char, count in stats["characters"].items()))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "stats":
            all_stats = [manifest_stats(path) for path in args.manifests]
            for stats in all_stats:
                _print_stats(stats)
            if args.json:
                write_json(args.json, all_stats)
            return 0
        if args.command == "validate":
            problems = [p for path in args.manifests for p in validate_manifest(path, args.lang, not args.no_audio)]
            for problem in problems:
                print(problem)
            print(f"{len(problems)} problem(s) in {len(args.manifests)} manifest(s)")
            return 1 if problems else 0
        if args.command == "merge":
            weights = args.weights or [1.0] * len(args.manifests)
            count = merge_manifests(args.manifests, weights, args.out, args.seed)
            print(f"wrote {count} lines to {args.out}")
            return 0
        result = subset_manifest(args.manifest, args.hours, args.out, args.seed)
        print(f"wrote {result['utterances']} utterances ({result['hours']} h) to {args.out}")
        return 0
    except (FileNotFoundError, ValueError, KeyError, UnknownLanguage) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
