"""``asr-transfer manifest stats | validate | merge | subset``: utilities over NeMo manifests.

In: one or more NeMo manifests. Out: ``stats`` prints (or writes as JSON) counts, hours, durations,
speakers and the character inventory; ``validate`` checks every line (fields, audio present,
readable and mono as training needs it, duration, characters) and exits 1 on problems; ``merge``
mixes manifests with weights (0.2 keeps a random fifth, 2 repeats every line twice); ``subset --hours H
--seed S`` draws a random subset of H hours, nested for the same seed (a 1 h subset lies inside the 2 h one).
``merge`` and ``subset`` rewrite a relative audio path so that it names the same file from OUT's folder.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter

from asr_transfer.errors import UserError
from asr_transfer.fileio import read_manifest, write_json, write_manifest
from asr_transfer.languages import load_language
from asr_transfer.manifests.checks import TRAINING_FIELDS, iter_problems
from asr_transfer.manifests.paths import rebased_entry


def manifest_stats(path: str) -> dict:
    durations, characters, speakers = [], Counter(), set()
    for entry in read_manifest(path, fields=("duration", "text")):
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


def validate_manifest(path: str, lang: str | None = None, check_audio: bool = True) -> list[str]:
    """Problems found, one string per problem (empty when the manifest is sound)."""
    language = load_language(lang) if lang else None
    problems = []
    # the training check: a manifest that validates is one finetune accepts
    for where, problem, entry in iter_problems(path, TRAINING_FIELDS, "exists" if check_audio else None):
        if problem:
            problems.append(problem)
        if language and entry is not None:
            outside = sorted({char for char in str(entry["text"]) if not language.allows(char)})
            if outside:
                problems.append(f"{where}: characters outside the {lang} alphabet: {''.join(outside)!r}")
    return problems


def merge_manifests(paths: list[str], weights: list[float], out: str, seed: int = 0) -> int:
    if len(weights) != len(paths):
        raise UserError(f"{len(paths)} manifests but {len(weights)} weights; give one --weights value per manifest")
    rng = random.Random(seed)
    merged = []
    for path, weight in zip(paths, weights, strict=True):
        if weight < 0:
            raise UserError(f"weight {weight} for {path} is negative; give a weight of 0 or more")
        # relative audio paths are the input's folder's; rewritten so they name the same files from OUT's
        entries = [rebased_entry(entry, path, out) for entry in read_manifest(path)]
        whole, fraction = int(weight), weight - int(weight)
        merged.extend(entries * whole)
        merged.extend(rng.sample(entries, round(fraction * len(entries))))
    rng.shuffle(merged)
    return write_manifest(out, merged)


def subset_manifest(path: str, hours: float, out: str, seed: int = 0) -> dict:
    """A random subset of about ``hours`` hours; with one seed, smaller subsets nest in larger ones."""
    entries = [rebased_entry(entry, path, out) for entry in read_manifest(path, fields=("duration",))]
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
    parser = argparse.ArgumentParser(
        prog="asr-transfer manifest",
        description="Utilities over NeMo manifests: stats (counts, hours, durations, speakers, characters), "
        "validate (every line's fields, audio and characters; exit 1 on problems), merge (mix manifests with "
        "weights: 0.2 keeps a random fifth, 2 repeats every line twice) and subset (H random hours, nested "
        "for one seed).",
        epilog="Run `asr-transfer manifest COMMAND --help` for a command's arguments.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    stats = commands.add_parser("stats", help="counts, hours, durations, speakers, characters")
    stats.add_argument("manifests", nargs="+", help="NeMo manifests")
    stats.add_argument("--json", help="also write the statistics to this JSON file")
    validate = commands.add_parser("validate", help="check every line; exit 1 when a problem is found")
    validate.add_argument("manifests", nargs="+", help="NeMo manifests to check")
    validate.add_argument("--lang", help="also check that text uses only this language's characters")
    validate.add_argument("--no-audio", action="store_true", help="do not open the audio files")
    merge = commands.add_parser("merge", help="mix manifests with weights (e.g. new domain 1, old domain 0.2)")
    merge.add_argument("manifests", nargs="+", help="NeMo manifests to mix")
    merge.add_argument("--weights", type=float, nargs="+", help="one per manifest (default 1 each)")
    merge.add_argument("--out", required=True, help="the merged manifest to write")
    merge.add_argument("--seed", type=int, default=0, help="seed of the fractional draws and the shuffle")
    subset = commands.add_parser("subset", help="random subset of H hours, for data-budget experiments")
    subset.add_argument("manifest", help="NeMo manifest to draw from")
    subset.add_argument("--hours", type=float, required=True, help="hours of audio to draw")
    subset.add_argument("--seed", type=int, default=0, help="seed; one seed nests smaller subsets in larger")
    subset.add_argument("--out", required=True, help="the subset manifest to write")
    return parser


def _print_stats(stats: dict) -> None:
    if not stats["utterances"]:
        print(f"{stats['manifest']}: empty (0 utterances)")
        return
    print(
        f"{stats['manifest']}: {stats['utterances']} utterances, {stats['hours']:.3f} h, "
        f"duration {stats['duration_min']}-{stats['duration_max']} s (mean {stats['duration_mean']}), "
        f"{stats['speakers']} speakers, {len(stats['characters'])} characters"
    )
    print("  characters: " + " ".join(f"{char!r}:{count}" for char, count in stats["characters"].items()))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
