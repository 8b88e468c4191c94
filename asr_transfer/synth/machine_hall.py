"""A synthetic "machine hall" domain: technical English spoken by espeak-ng, tested in machine noise.

In: an output folder, clip counts per split, a seed. Out (all audio 16 kHz mono PCM WAV):

- ``clean/{train,dev,test}.json``: NeMo manifests of sentences built around :data:`TERMS` (48 technical
  words a general English model has not been trained on), speakers disjoint across splits;
- ``noise/{train,dev,test}/*.wav`` and ``noise/{split}.json`` (no text): machine-like noise made by code
  (mains hum with harmonics, broadband noise shaped by a random low-pass, impacts with decaying
  resonances); each split has its own set, drawn from a disjoint parameter range (hum fundamental,
  filter, impact rate), so the test noise is not the training noise;
- ``noisy/{dev,test}.json``: dev and test speech mixed with a clip of that split's noise set at an SNR
  drawn uniformly from ``snr_db`` (default 0-10 dB), the SNR of each line stored as ``snr_db``;
- ``domain_text.txt``: other sentences of the same grammar (none of dev's or test's), for an LM;
- ``terms.txt``: the terms, one a line, for ``--boost``.

Deterministic for a seed, except that espeak-ng's output is not bit-identical across its versions.
"""

from __future__ import annotations

import argparse
import json
import os
import random

import numpy as np
import soundfile
import soxr

from asr_transfer.fileio import atomic_open, write_manifest
from asr_transfer.manifests.audio import TARGET_RATE
from asr_transfer.synth import espeak

RATE = TARGET_RATE
TERMS = (
    "hydraulic", "torque", "conveyor", "actuator", "gearbox", "bearing", "spindle", "lathe", "piston",
    "valve", "compressor", "turbine", "coolant", "lubricant", "sprocket", "flange", "manifold", "solenoid",
    "servo", "pneumatic", "hopper", "extruder", "gasket", "impeller", "crankshaft", "camshaft", "rotor",
    "stator", "capacitor", "thermostat", "tachometer", "manometer", "grinder", "forklift", "pallet",
    "ratchet", "bushing", "coupling", "diaphragm", "nozzle", "throttle", "clutch", "dynamo", "inverter",
    "calibration", "tensioner", "flywheel", "sensor",
)  # fmt: skip
SLOTS = {
    "number": "one two three four five six seven eight nine ten eleven twelve".split(),
    "person": ["the operator", "the technician", "maria", "john", "the night shift", "our mechanic"],
    "adj": ["old", "broken", "left", "right", "main", "spare", "new", "upper", "lower", "second"],
    "state": ["too hot", "very slow", "too fast", "very loud", "smoothly again", "out of balance", "noisy"],
    "action": ["more oil", "a cleaning", "a new seal", "an inspection", "a repair", "a quick check"],
}
TEMPLATES = (
    "the {term} on line {number} needs {action}",
    "please check the {term} and the {term2}",
    "{person} replaced the {adj} {term} this morning",
    "stop the {term} before you open the {term2}",
    "the {term} is running {state}",
    "{person} says the {term} of machine {number} is {state}",
    "we need a {adj} {term} for the {term2}",
    "turn off the {term} and test the {term2} on line {number}",
    "is the {adj} {term} still {state}",
    "{person} will order a {term} and two {term2}s",
)
VOICES = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3")
SPLIT_VOICES = {"train": VOICES[:9], "dev": VOICES[9:12], "test": VOICES[12:]}
# Disjoint noise conditions per split: hum fundamental (Hz), low-pass corner range (Hz), impacts per second.
NOISE_CONDITIONS = {
    "train": {"hum": (46.0, 52.0), "corner": (600.0, 2500.0), "impacts": (0.3, 1.0)},
    "dev": {"hum": (53.0, 57.0), "corner": (2500.0, 4000.0), "impacts": (1.0, 1.5)},
    "test": {"hum": (58.0, 64.0), "corner": (4000.0, 7000.0), "impacts": (1.5, 2.5)},
}


def sentence(rng: random.Random) -> str:
    template = rng.choice(TEMPLATES)
    term = rng.choice(TERMS)
    term2 = rng.choice([other for other in TERMS if other != term])
    fields = {name: rng.choice(options) for name, options in SLOTS.items()}
    return template.format(term=term, term2=term2, **fields)


def distinct_sentences(count: int, rng: random.Random, taken: set[str]) -> list[str]:
    out = []
    while len(out) < count:
        text = sentence(rng)
        if text not in taken:
            taken.add(text)
            out.append(text)
    return out


def speak(text: str, rng: random.Random, voices: tuple[str, ...]) -> np.ndarray:
    engine = espeak.engine()
    voice = f"en-us+{rng.choice(voices)}"
    samples = engine.synthesize(text, voice, rng.randint(140, 185), rng.randint(30, 70))
    audio = soxr.resample(samples, engine.sample_rate, RATE).astype(np.float32)
    peak = float(np.max(np.abs(audio))) or 1.0
    return (audio / peak * 0.7).astype(np.float32)


def machine_noise(seconds: float, rng: np.random.Generator, condition: dict) -> np.ndarray:
    """Hum with harmonics + low-passed broadband noise + impacts, peak-normalized to 0.5."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = rng.uniform(*condition["hum"])
    hum = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) for k in range(1, 11))
    # one-pole low-pass of white noise, corner frequency drawn from the split's range
    corner = rng.uniform(*condition["corner"])
    a = float(np.exp(-2 * np.pi * corner / RATE))
    from scipy.signal import lfilter

    broadband = lfilter([1 - a], [1, -a], rng.standard_normal(n))
    broadband /= np.std(broadband) + 1e-9
    impacts = np.zeros(n)
    for _ in range(rng.poisson(rng.uniform(*condition["impacts"]) * seconds)):
        start = int(rng.uniform(0, n - 1))
        length = min(n - start, int(0.25 * RATE))
        tail = np.arange(length) / RATE
        ring = np.sin(2 * np.pi * rng.uniform(300, 3000) * tail) * np.exp(-tail * rng.uniform(15, 60))
        impacts[start : start + length] += rng.uniform(2, 6) * ring
    noise = rng.uniform(0.5, 1.5) * hum / 3 + rng.uniform(0.5, 1.5) * broadband + impacts
    return (noise / (np.max(np.abs(noise)) + 1e-9) * 0.5).astype(np.float32)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float, offset: int) -> np.ndarray:
    """``speech`` plus a looped stretch of ``noise`` scaled so that power(speech)/power(noise) is ``snr_db``."""
    reps = int(np.ceil((offset + len(speech)) / len(noise))) + 1
    piece = np.tile(noise, reps)[offset : offset + len(speech)]
    gain = np.sqrt(np.mean(speech**2) / (np.mean(piece**2) * 10 ** (snr_db / 10) + 1e-12))
    mixed = speech + gain * piece
    peak = float(np.max(np.abs(mixed)))
    return (mixed / peak * 0.9 if peak > 0.99 else mixed).astype(np.float32)


def make_machine_hall(
    out_dir: str,
    train: int = 300,
    dev: int = 60,
    test: int = 100,
    noise_clips: int = 12,
    snr_db: tuple[float, float] = (0.0, 10.0),
    domain_text: int = 2000,
    seed: int = 0,
) -> dict:
    """Write the domain under ``out_dir`` (see the module docstring); returns the paths written."""
    rng = random.Random(seed)
    counts = {"train": train, "dev": dev, "test": test}
    taken: set[str] = set()
    texts = {split: distinct_sentences(count, rng, taken) for split, count in counts.items()}
    held_out = set(texts["dev"]) | set(texts["test"])
    extra = distinct_sentences(domain_text, rng, set(held_out))  # may repeat train sentences, never dev/test
    paths = {}
    for split in ("train", "dev", "test"):
        noise_rng = np.random.default_rng([seed, list(counts).index(split), 7])
        folder = os.path.join(out_dir, "noise", split)
        os.makedirs(folder, exist_ok=True)
        rows = []
        for index in range(noise_clips):
            seconds = float(noise_rng.uniform(4, 8))
            path = os.path.join(folder, f"{split}_noise_{index:03d}.wav")
            soundfile.write(path, machine_noise(seconds, noise_rng, NOISE_CONDITIONS[split]), RATE, subtype="PCM_16")
            rows.append({"audio_filepath": os.path.abspath(path), "duration": round(seconds, 3), "text": ""})
        paths[f"noise_{split}"] = os.path.join(out_dir, "noise", f"{split}.json")
        write_manifest(paths[f"noise_{split}"], rows)
    for split, sentences in texts.items():
        clean_dir = os.path.join(out_dir, "clean", split)
        noisy_dir = os.path.join(out_dir, "noisy", split)
        os.makedirs(clean_dir, exist_ok=True)
        noise_files = _rows(paths[f"noise_{split}"])
        noises = [soundfile.read(row["audio_filepath"], dtype="float32")[0] for row in noise_files]
        clean_rows, noisy_rows = [], []
        split_rng = random.Random(f"{seed}-{split}")
        for index, text in enumerate(sentences):
            audio = speak(text, split_rng, SPLIT_VOICES[split])
            name = f"{split}_{index:04d}.wav"
            soundfile.write(os.path.join(clean_dir, name), audio, RATE, subtype="PCM_16")
            duration = round(len(audio) / RATE, 3)
            path = os.path.abspath(os.path.join(clean_dir, name))
            clean_rows.append({"audio_filepath": path, "duration": duration, "text": text})
            if split == "train":
                continue
            os.makedirs(noisy_dir, exist_ok=True)
            which = split_rng.randrange(len(noises))
            snr = round(split_rng.uniform(*snr_db), 2)
            mixed = mix_at_snr(audio, noises[which], snr, split_rng.randrange(len(noises[which])))
            soundfile.write(os.path.join(noisy_dir, name), mixed, RATE, subtype="PCM_16")
            noisy_rows.append(
                {
                    "audio_filepath": os.path.abspath(os.path.join(noisy_dir, name)),
                    "duration": duration,
                    "text": text,
                    "snr_db": snr,
                    "noise": os.path.basename(noise_files[which]["audio_filepath"]),
                }
            )
        paths[f"clean_{split}"] = os.path.join(out_dir, "clean", f"{split}.json")
        write_manifest(paths[f"clean_{split}"], clean_rows)
        if noisy_rows:
            paths[f"noisy_{split}"] = os.path.join(out_dir, "noisy", f"{split}.json")
            write_manifest(paths[f"noisy_{split}"], noisy_rows)
    paths["domain_text"] = os.path.join(out_dir, "domain_text.txt")
    with atomic_open(paths["domain_text"]) as handle:
        handle.writelines(f"{text}\n" for text in [*texts["train"], *extra])
    paths["terms"] = os.path.join(out_dir, "terms.txt")
    with atomic_open(paths["terms"]) as handle:
        handle.writelines(f"{term}\n" for term in TERMS)
    return paths


def _rows(manifest: str) -> list[dict]:
    with open(manifest, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m asr_transfer.synth.machine_hall",
        description="Synthetic machine-hall domain: technical sentences by espeak-ng, machine noise by code.",
    )
    parser.add_argument("out_dir")
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--dev", type=int, default=60)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    paths = make_machine_hall(args.out_dir, args.train, args.dev, args.test, seed=args.seed)
    print(json.dumps(paths, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
