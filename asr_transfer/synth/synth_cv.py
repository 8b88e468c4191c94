"""``asr-transfer synth-cv``: a synthetic Common Voice release spoken by espeak-ng.

In: a language (with a grammar in its language file), a clip count, a seed; optionally English accents,
an older release layout (``--cv-version``) and ``--faults``. Out: ``OUT_DIR/cv-corpus-<ver>-<date>/<lang>/``
(files at the top of ``OUT_DIR`` for v1-v4) with ``clips/*.mp3`` (32 kHz mono, every fifth clip 48 kHz),
train/dev/test/validated/invalidated/other/reported.tsv, clip_durations.tsv (v16.1+), and
``faults.json`` listing each planted fault with the reject reason a correct reader gives it.
Speakers (voice variant, speed, pitch) are disjoint across train, dev and test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile
import soxr

from asr_transfer.errors import UserError
from asr_transfer.fileio import atomic_open, atomic_path
from asr_transfer.languages import available_languages, load_language
from asr_transfer.manifests.common_voice import header_for_version
from asr_transfer.parallel import default_jobs, ordered_map
from asr_transfer.synth import espeak
from asr_transfer.synth.grammar import sentences

# Variants that still sound like speech (the espeak-ng data also has robots and croaks).
HUMAN_VARIANTS = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "klatt",
    "klatt2",
    "klatt3",
    "iven",
    "iven2",
    "john",
    "max",
    "mike2",
    "anika",
    "linda",
    "steph",
    "edward",
    "norbert",
    "robert",
    "benjamin",
    "antonio",
    "marcelo",
    "victor",
    "david",
    "adam",
    "andrea",
    "annie",
    "Alicia",
)
ENGLISH_ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
FOREIGN_SAMPLES = ("Привет", "hello", "こんにちは", "שלום")
SPLIT_SHARES = (("train", 0.7), ("dev", 0.15), ("test", 0.15))
OLD_GENDERS, NEW_GENDERS = ("male", "female", "other"), ("male_masculine", "female_feminine", "non-binary")
AGES = ("teens", "twenties", "thirties", "fourties", "fifties", "sixties")


@dataclass(frozen=True)
class Speaker:
    client_id: str
    voice: str
    words_per_minute: int
    pitch: int
    gender: str
    age: str
    accent: str


@dataclass
class Clip:
    name: str
    sentence: str
    speaker: Speaker
    sample_rate: int
    fault: str = ""  # planted fault, see plant_faults
    spoken: str = ""  # text spoken when it differs from the prompt (planted faults)
    extra: dict = field(default_factory=dict)


def corpus_dir(out_dir: str | os.PathLike, lang: str, version: float, date: str) -> Path:
    """The locale folder of a release: ``cv-corpus-<ver>-<date>/<lang>`` from v5 on, the top before."""
    if version < 5:
        return Path(out_dir)
    return Path(out_dir) / f"cv-corpus-{version:.1f}-{date}" / lang


def make_speakers(count: int, base_voices: list[str], rng: random.Random, version: float) -> list[Speaker]:
    variants = [name for name in HUMAN_VARIANTS if name in set(espeak.variant_names())] or [""]
    genders = NEW_GENDERS if version >= 17 else OLD_GENDERS
    speakers = []
    for index in range(count):
        base = base_voices[index % len(base_voices)]
        variant = rng.choice(variants)
        speakers.append(
            Speaker(
                client_id=hashlib.sha256(f"{rng.random()}-{index}".encode()).hexdigest()[:64] * 2,
                voice=f"{base}+{variant}" if variant else base,
                words_per_minute=rng.randint(125, 195),
                pitch=rng.randint(20, 80),
                gender=rng.choice(genders),
                age=rng.choice(AGES),
                accent=base if len(base_voices) > 1 or base.startswith("en") else "",
            )
        )
    return speakers


def assign_speakers(speakers: list[Speaker]) -> dict[str, list[Speaker]]:
    """Speaker-disjoint splits, each with at least one speaker."""
    groups, start = {}, 0
    for index, (split, share) in enumerate(SPLIT_SHARES):
        remaining_splits = len(SPLIT_SHARES) - index - 1
        size = max(1, round(len(speakers) * share))
        size = min(size, len(speakers) - start - remaining_splits)
        groups[split] = speakers[start : start + size] if remaining_splits else speakers[start:]
        start += size
    return groups


def clip_name(lang: str, number: int, version: float) -> str:
    if version < 2:
        return hashlib.sha512(f"{lang}-{number}".encode()).hexdigest()
    return f"common_voice_{lang}_{40000000 + number}.mp3"


def plan_corpus(lang: str, clips: int, seed: int, version: float, accents: list[str] | None) -> dict[str, list[Clip]]:
    language = load_language(lang)
    if not language.grammar:
        raise UserError(f"language {lang} has no grammar in its language file; add one, or synthesize another language")
    if clips < 10:
        raise UserError("--clips is below 10; ask for at least 10 (train, dev and test each need speakers)")
    rng = random.Random(seed)
    base_voices = list(accents) if accents else [language.espeak_voice]
    speakers = make_speakers(max(6, clips // 10), base_voices, rng, version)
    groups = assign_speakers(speakers)
    prompts = sentences(language.grammar, rng)
    extra = max(3, clips // 10)
    counts = {split: max(1, round(clips * share)) for split, share in SPLIT_SHARES}
    counts["train"] = clips - counts["dev"] - counts["test"]
    plan: dict[str, list] = {name: [] for name in ("train", "dev", "test", "validated_only", "other", "invalidated")}
    number = 0

    def new_clip(pool: list[Speaker]) -> Clip:
        nonlocal number
        number += 1
        sentence = next(prompts, None)
        if sentence is None:
            raise UserError(f"the {lang} grammar ran out of distinct sentences; ask for fewer clips")
        rate = 48000 if number % 5 == 0 else 32000
        return Clip(clip_name(lang, number, version), sentence, rng.choice(pool), rate)

    for split, _ in SPLIT_SHARES:
        plan[split] = [new_clip(groups[split]) for _ in range(counts[split])]
    # Validated-only clips: mostly new train speakers, some from dev speakers (to be excluded again).
    plan["validated_only"] = [new_clip(groups["train"] if i % 3 else groups["dev"]) for i in range(extra)]
    plan["other"] = [new_clip(groups["train"]) for _ in range(max(1, extra // 2))]
    plan["invalidated"] = [new_clip(groups["train"]) for _ in range(max(1, extra // 2))]
    # Sentences nobody recorded yet: validated_sentences.tsv (v17+) lists them beside the recorded ones.
    plan["unrecorded"] = [sentence for sentence, _ in zip(prompts, range(clips), strict=False)]
    return plan


def plant_faults(plan: dict[str, list[Clip]], lang: str, version: float) -> list[dict]:
    """Turn some planned clips into the bad cases real releases hold; return what a reader must say.

    The audio of an edited prompt still speaks the original sentence. A truncated MP3 decodes to a
    shorter clip, which only the listed durations of v16.1+ reveal.
    """
    language = load_language(lang)
    if len(plan["train"]) < 8 or len(plan["dev"]) < 2:
        raise UserError("--faults needs at least 30 clips; raise --clips")
    truncated_reason = "duration_mismatch" if version >= 16.1 else None
    foreign = next(word for word in FOREIGN_SAMPLES if not all(language.allows(c) for c in word.lower()))
    faults = [
        ("train", 0, "quote_first_row", None, lambda c: replace(c, sentence='"' + c.sentence)),
        ("dev", 0, "quote_first_row", None, lambda c: replace(c, sentence='"' + c.sentence)),
        ("train", 1, "zero_byte", "empty_clip", None),
        ("train", 2, "truncated", truncated_reason, None),
        ("train", 3, "digits", "digits", lambda c: replace(c, sentence=c.sentence[:-1] + " 42.")),
        ("train", 4, "foreign_script", "foreign_char", lambda c: replace(c, sentence=f"{foreign} {c.sentence}")),
        ("train", 5, "over_long", "too_long", None),
        ("dev", 1, "missing", "missing_clip", None),
        ("train", 6, "empty_text", "empty_text", lambda c: replace(c, sentence="… –")),
    ]
    expected = []
    for split, index, kind, reason, edit in faults:
        original = plan[split][index]
        edited = edit(original) if edit else original
        plan[split][index] = replace(edited, fault=kind, spoken=original.sentence)
        expected.append({"split": split, "path": original.name, "fault": kind, "reason": reason})
    duplicate = plan["train"][-1]
    plan["train"].append(duplicate)
    expected.append({"split": "train", "path": duplicate.name, "fault": "duplicate_row", "reason": "duplicate_path"})
    return expected


def _speak(task: tuple) -> int:
    """Worker: synthesize one clip to MP3 (unless present) and return its duration in ms."""
    text, speaker, rate, destination, fault, seed = task
    engine = espeak.engine()
    audio = engine.synthesize(text, speaker.voice, speaker.words_per_minute, speaker.pitch)
    rng = np.random.default_rng(seed)
    pad = lambda: np.zeros(int(engine.sample_rate * rng.uniform(0.15, 0.4)), dtype=np.float32)  # noqa: E731
    audio = np.concatenate([pad(), audio, pad()])
    if fault == "over_long":
        audio = np.tile(audio, int(np.ceil(25 * engine.sample_rate / max(audio.size, 1))))
    audio = soxr.resample(audio, engine.sample_rate, rate).astype(np.float32)
    audio += rng.normal(0, 0.002, audio.size).astype(np.float32)  # a noise floor, as real microphones have
    duration_ms = int(round(1000 * audio.size / rate))
    if fault == "missing" or os.path.exists(destination):
        return duration_ms
    with atomic_path(destination) as tmp:
        if fault == "zero_byte":
            open(tmp, "wb").close()
        else:
            soundfile.write(tmp, np.clip(audio, -1, 1), rate, format="MP3")
            if fault == "truncated":
                with open(tmp, "r+b") as handle:
                    handle.truncate(os.path.getsize(tmp) // 3)
    return duration_ms


def _row(clip: Clip, header: list[str], lang: str, version: float) -> str:
    values = {
        "client_id": clip.speaker.client_id,
        "path": clip.name,
        "sentence_id": hashlib.sha256(clip.sentence.encode()).hexdigest(),
        "sentence": clip.sentence,
        "sentence_domain": "",
        "up_votes": "2",
        "down_votes": "0",
        "age": clip.speaker.age,
        "gender": clip.speaker.gender,
        "accent": clip.speaker.accent,
        "accents": clip.speaker.accent,
        "variant": "",
        "locale": lang,
        "segment": "",
    }
    return "\t".join(values[name] for name in header) + "\n"


def write_tsv(path: Path, header: list[str], rows: list[Clip], lang: str, version: float) -> None:
    with atomic_open(path) as handle:
        handle.write("\t".join(header) + "\n")
        for clip in rows:
            handle.write(_row(clip, header, lang, version))


def synth_cv(
    lang: str,
    clips: int,
    out_dir: str,
    seed: int = 0,
    cv_version: float = 17.0,
    date: str = "2024-03-15",
    accents: list[str] | None = None,
    faults: bool = False,
    jobs: int | None = None,
    progress: bool = True,
) -> Path:
    """Write the release and return its locale folder."""
    plan = plan_corpus(lang, clips, seed, cv_version, accents)
    expected = plant_faults(plan, lang, cv_version) if faults else []
    locale_dir = corpus_dir(out_dir, lang, cv_version, date)
    (locale_dir / "clips").mkdir(parents=True, exist_ok=True)
    unique = {clip.name: clip for name, group in plan.items() if name != "unrecorded" for clip in group}
    tasks = [
        (
            clip.spoken or clip.sentence,
            clip.speaker,
            clip.sample_rate,
            str(locale_dir / "clips" / _file(clip.name)),
            clip.fault,
            seed * 1_000_003 + number,
        )
        for number, clip in enumerate(unique.values())
    ]
    from tqdm import tqdm

    durations = {}
    results = ordered_map(_speak, tasks, jobs=jobs or default_jobs())
    for clip, duration in tqdm(
        zip(unique.values(), results, strict=True), total=len(tasks), unit="clip", desc="synth", disable=not progress
    ):
        durations[clip.name] = duration
    header = header_for_version(cv_version)
    validated = plan["train"] + plan["dev"] + plan["test"] + plan["validated_only"]
    seen, validated_unique = set(), []
    for clip in validated:
        if clip.name not in seen:
            seen.add(clip.name)
            validated_unique.append(clip)
    tables = {
        **{split: plan[split] for split in ("train", "dev", "test", "other", "invalidated")},
        "validated": validated_unique,
    }
    for name, rows in tables.items():
        write_tsv(locale_dir / f"{name}.tsv", header, rows, lang, cv_version)
    _write_reported(locale_dir, plan["test"][:1], lang, cv_version)
    if cv_version >= 17:
        _write_validated_sentences(locale_dir, [clip.sentence for clip in validated_unique] + plan["unrecorded"])
    if cv_version >= 16.1:
        with atomic_open(locale_dir / "clip_durations.tsv") as handle:
            handle.write("clip\tduration[ms]\n")
            for name, duration in durations.items():
                handle.write(f"{_file(name)}\t{duration}\n")
    with atomic_open(locale_dir / "faults.json") as handle:
        json.dump(expected, handle, ensure_ascii=False, indent=1)
    return locale_dir


def _file(name: str) -> str:
    return name if name.endswith(".mp3") else f"{name}.mp3"


def _write_validated_sentences(locale_dir: Path, sentences: list[str]) -> None:
    """v17+'s text-only list, quoted CSV-style like the real file (unlike the clip TSVs)."""
    import csv

    with atomic_open(locale_dir / "validated_sentences.tsv") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["sentence_id", "sentence", "sentence_domain", "source", "is_used", "clips_count"])
        for sentence in dict.fromkeys(sentences):
            sentence_id = hashlib.sha256(sentence.encode()).hexdigest()
            writer.writerow([sentence_id, sentence, "", "synthetic grammar", 1, 0])


def _write_reported(locale_dir: Path, clips: list[Clip], lang: str, version: float) -> None:
    if version < 5:
        return
    with atomic_open(locale_dir / "reported.tsv") as handle:
        handle.write("sentence_id\tsentence\tlocale\treason\n")
        for clip in clips:
            sentence_id = hashlib.sha256(clip.sentence.encode()).hexdigest()
            handle.write(f"{sentence_id}\t{clip.sentence}\t{lang}\tgrammar-or-spelling\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transfer synth-cv",
        description="Write a synthetic Common Voice release (real layout and TSV headers) spoken by espeak-ng "
        "voices of many variants, speeds and pitches, for offline tests and demos.",
    )
    parser.add_argument("out_dir", help="folder to write cv-corpus-<ver>-<date>/<lang>/ into")
    with_grammar = [code for code in available_languages() if load_language(code).grammar]
    parser.add_argument("--lang", required=True, help=f"language with a grammar: {', '.join(with_grammar)}")
    parser.add_argument("--clips", type=int, default=200, help="clips in train+dev+test (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same corpus")
    parser.add_argument("--cv-version", type=float, default=17.0, help="release layout and headers (1 to 25)")
    parser.add_argument("--date", default="2024-03-15", help="release date in the folder name")
    parser.add_argument(
        "--accent",
        action="append",
        default=[],
        metavar="VOICE",
        help=f"English accent voice(s) to speak with, e.g. {', '.join(ENGLISH_ACCENTS[:4])} (repeatable)",
    )
    parser.add_argument("--faults", action="store_true", help="plant bad cases (see faults.json in the output)")
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="worker processes (default: all cores)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    locale_dir = synth_cv(
        args.lang,
        args.clips,
        args.out_dir,
        args.seed,
        args.cv_version,
        args.date,
        args.accent or None,
        args.faults,
        args.jobs,
        not args.no_progress,
    )
    print(f"wrote {locale_dir}")
    return 0
