#!/usr/bin/env python
"""Does ``asr-transfer filter`` find transcripts that do not match their audio, and does removing them help?

In: a clip count, a seed, a step budget and the share of training lines to spoil (``--planted``). A synthetic
German Common Voice release is made and prepared (``synth-cv``, ``prepare-cv``), and that share of the
training lines is given another line's sentence (the planted mismatches). The shipped English base is
fine-tuned on this noisy train (the "uncleaned" model); ``filter`` transcribes the noisy train with it and
keeps the lines with CER <= ``--max-cer``; the base is fine-tuned again, with the same steps and seed, on the
kept lines (the "cleaned" model) and, as a reference, on the original train without planted mismatches.
Out: ``--results`` (default docs/results/filter) gets ``RESULTS.md`` (planted mismatches removed, good clips
kept, at --max-cer and at other thresholds; test WER and CER of the three models; the command, seed, date)
and ``results.json``; the corpus, runs and evaluations stay in ``--work``. A rerun reuses the corpus and
resumes finished training runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE = REPO / "recipes" / "en_base" / "model" / "en_tiny_quartznet_char.nemo"
CONFIG = REPO / "recipes" / "conf" / "tiny_quartznet_char.yaml"
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.65, 0.8, 1.0)


def cli(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "asr_transfer.cli", *args], stdout=subprocess.PIPE, text=True)
    if result.returncode:
        raise SystemExit(f"asr-transfer {' '.join(args[:1])} failed with status {result.returncode}")
    return result.stdout.strip()


def log(message: str) -> None:
    print(f"{datetime.datetime.now():%F %T} {message}", flush=True)


def plant_mismatches(train: Path, noisy: Path, share: float, seed: int) -> list[str]:
    """Copy ``train`` to ``noisy`` with ``share`` of its lines given the sentence of another line (one
    with other text); returns the audio paths of the spoiled lines."""
    from asr_transfer.fileio import read_manifest, write_manifest

    entries = list(read_manifest(str(train)))
    rng = random.Random(seed)
    planted = rng.sample(range(len(entries)), round(share * len(entries)))
    for index in planted:
        donors = [other for other in range(len(entries)) if entries[other]["text"] != entries[index]["text"]]
        entries[index] = {**entries[index], "text": entries[rng.choice(donors)]["text"]}
    write_manifest(str(noisy), entries)
    return [entries[index]["audio_filepath"] for index in planted]


def train_args(name: str, manifest: Path, args, data: Path, vocab: str) -> list[str]:
    return [
        "--config", str(CONFIG), "lang=de", f"init.nemo={BASE}", f"vocab.dir={vocab}",
        f"data.train_manifest={manifest}", f"data.dev_manifest={data / 'dev.json'}",
        f"data.batch_size={args.batch_size}", f"trainer.max_steps={args.steps}", "trainer.val_check_interval=25",
        f"exp_manager.exp_dir={args.work / 'runs'}", f"exp_manager.name={name}", f"seed={args.seed}",
        "trainer.enable_progress_bar=false",
    ]  # fmt: skip


def train_and_test(name: str, manifest: Path, args, data: Path, vocab: str) -> dict:
    """Fine-tune the base on ``manifest``; the best model by dev WER and its test result."""
    from asr_transfer.layout import summary_path

    finetune = train_args(name, manifest, args, data, vocab)
    run = cli("finetune", *finetune, "--print", "run-dir")
    started = time.time()
    log(f"fine-tune {name}: {manifest} -> {run}")
    cli("finetune", *finetune)
    seconds = time.time() - started
    best = cli("export", "--print-best", run)
    out = args.work / f"eval_test_{name}"
    cli("evaluate", "--model", best, "--manifest", str(data / "test.json"), "--lang", "de", "--out", str(out))
    summary = json.loads(summary_path(out).read_text(encoding="utf-8"))
    log(f"{name}: test WER {summary['wer']:.4f} CER {summary['cer']:.4f}")
    return {"model": best, "train_seconds": round(seconds, 1), "test_wer": summary["wer"], "test_cer": summary["cer"]}


def share(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def separation(utterances, planted: set[str], threshold: float) -> dict:
    bad = [u for u in utterances if u.entry["audio_filepath"] in planted]
    good = [u for u in utterances if u.entry["audio_filepath"] not in planted]
    removed = sum(u.cer is None or u.cer > threshold for u in bad)
    kept = sum(u.cer is not None and u.cer <= threshold for u in good)
    return {
        "max_cer": threshold,
        "planted": len(bad),
        "planted_removed": removed,
        "planted_removed_pct": share(removed, len(bad)),
        "good": len(good),
        "good_kept": kept,
        "good_kept_pct": share(kept, len(good)),
    }


def quantiles(values: list[float]) -> str:
    import numpy

    points = [round(float(numpy.quantile(values, q)), 2) for q in (0.0, 0.1, 0.5, 0.9, 1.0)]
    return " / ".join(f"{point:.2f}" for point in points)


def report(results: dict, command: str) -> str:
    at = results["at_max_cer"]
    runs = results["runs"]
    lines = [
        "# Cleaning training data with a model: measured",
        "",
        f"Made by `{command.strip()}` on {results['date']} ({results['cpus']} CPU cores, {results['minutes']} min "
        "in all; the machine was shared with a CI run, so the times are upper bounds). Seed "
        f"{results['seed']}: the synthetic corpus, the planted lines and every training run.",
        "",
        f"- **Data**: synthetic German Common Voice, {results['clips']} clips (`synth-cv`), prepared by `prepare-cv`: "
        f"{results['train']} train, {results['dev']} dev, {results['test']} test utterances.",
        f"- **Planted mismatches**: {at['planted']} train lines ({results['planted_share']:.0%}) were given another "
        "line's sentence (a line with other text), as a wrong or shifted transcript would be.",
        f"- **Filter model**: the shipped English base (`en_tiny_quartznet_char.nemo`) fine-tuned on the noisy train "
        f"for {results['steps']} steps, batch {results['batch_size']} (`tiny_quartznet_char.yaml`); the best "
        "checkpoint by dev WER. The same model is the 'uncleaned' arm below.",
        f"- **Filter**: `asr-transfer filter --max-cer {results['max_cer']:g} --lang de` on the noisy train: "
        f"kept {results['filter_summary']['kept']} of {results['filter_summary']['utterances_in']} lines.",
        "",
        "## Planted mismatches found",
        "",
        f"At `--max-cer {results['max_cer']:g}`: **{at['planted_removed_pct']:.1f} % of the planted mismatches "
        f"removed** ({at['planted_removed']} of {at['planted']}), **{at['good_kept_pct']:.1f} % of the good "
        f"clips kept** ({at['good_kept']} of {at['good']}).",
        "",
        "| --max-cer | planted removed | good kept |",
        "|---|---|---|",
    ]
    for row in results["thresholds"]:
        lines.append(
            f"| {row['max_cer']:g} | {row['planted_removed_pct']:.1f} % ({row['planted_removed']}/{row['planted']}) "
            f"| {row['good_kept_pct']:.1f} % ({row['good_kept']}/{row['good']}) |"
        )
    lines += [
        "",
        "CER under the filter model (min / 10 % / median / 90 % / max): good lines "
        f"{results['cer_good']}, planted lines {results['cer_planted']}.",
        "",
        "## Training on the cleaned manifest",
        "",
        f"The base fine-tuned for {results['steps']} steps with the same seed on each manifest; best checkpoint by "
        "dev WER, test greedy.",
        "",
        "| train manifest | lines | test WER | test CER |",
        "|---|---|---|---|",
    ]
    names = {
        "uncleaned": "noisy (planted mismatches), uncleaned",
        "cleaned": f"noisy, cleaned by `filter --max-cer {results['max_cer']:g}`",
        "original": "original (no planted mismatches): reference",
    }
    for name, label in names.items():
        if name in runs:
            run = runs[name]
            lines.append(f"| {label} | {run['lines']} | {run['test_wer']:.4f} | {run['test_cer']:.4f} |")
    lines += [
        "",
        "One seed on a small synthetic corpus: differences of a point or two in WER are within what another seed "
        "or another synthesis run (espeak-ng output is not bit-identical across runs) moves.",
        "",
        "## Found",
        "",
        *findings(results),
    ]
    return "\n".join(lines)


def findings(results: dict) -> list[str]:
    """What the tables say, computed from them, so that a rerun's text follows its numbers."""
    runs, at = results["runs"], results["at_max_cer"]
    found = []
    clean = [
        row["max_cer"] for row in results["thresholds"] if row["planted_removed_pct"] == row["good_kept_pct"] == 100
    ]
    sdp = " (NeMo SDP's value)" if results["max_cer"] == 0.65 else ""
    separating = ", ".join(f"{value:g}" for value in clean) or "none of the table's"
    found.append(
        f"- Thresholds that remove every planted mismatch and keep every good clip here: {separating}. "
        f"At {results['max_cer']:g}{sdp}, {at['planted_removed_pct']:.0f} % of the mismatches are "
        "removed: the synthetic sentences come from a small grammar, so another line's sentence shares words "
        '("kaufen", "mit dem") with what is said, and its CER can stay below the threshold. How far real Common '
        "Voice text behaves so was not measured here; the summary's CER quantiles show where a manifest's good "
        "lines end."
    )
    if {"uncleaned", "cleaned"} <= runs.keys():
        noisy, cleaned = runs["uncleaned"]["test_wer"], runs["cleaned"]["test_wer"]
        line = f"- Test WER {noisy:.3f} on the noisy train, {cleaned:.3f} on the cleaned one"
        if "original" in runs:
            original = runs["original"]["test_wer"]
            if noisy > original:
                closed = 100 * (noisy - cleaned) / (noisy - original)
                line += (
                    f", {original:.3f} on the original: cleaning closed {closed:.0f} % of the gap the mismatches opened"
                )
        found.append(line + ".")
    return found + [""]


def repo_relative(value):
    """Paths under the repository as relative ones, so that the committed JSON names no machine's folders."""
    if isinstance(value, dict):
        return {key: repo_relative(item) for key, item in value.items()}
    if isinstance(value, list):
        return [repo_relative(item) for item in value]
    if isinstance(value, str) and value.startswith(f"{REPO}{os.sep}"):
        return os.path.relpath(value, REPO)
    return value


def write_report(results: dict, folder: Path) -> None:
    from asr_transfer.fileio import atomic_open, write_json

    results = repo_relative(results)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "results.json", results)
    with atomic_open(folder / "RESULTS.md") as handle:
        handle.write(report(results, results["command"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=REPO / "exp" / "filter_study", help="corpus, runs, evaluations")
    parser.add_argument("--results", type=Path, default=REPO / "docs" / "results" / "filter", help="RESULTS.md here")
    parser.add_argument("--clips", type=int, default=400, help="clips of the synthetic release (default 400)")
    parser.add_argument("--steps", type=int, default=200, help="training steps of each run (default 200)")
    parser.add_argument("--batch-size", type=int, default=16, help="training batch (default 16)")
    parser.add_argument("--planted", type=float, default=0.1, help="share of train lines spoiled (default 0.1)")
    parser.add_argument("--max-cer", type=float, default=0.65, help="the filter's threshold (default 0.65)")
    parser.add_argument("--seed", type=int, default=0, help="seed of corpus, planting and training (default 0)")
    parser.add_argument("--jobs", type=int, default=2, help="processes for synthesis and preparation (default 2)")
    parser.add_argument("--no-reference", action="store_true", help="skip training on the original train")
    parser.add_argument(
        "--report-from", type=Path, help="rewrite RESULTS.md in --results from this results.json; nothing is run"
    )
    args = parser.parse_args(argv)
    if args.report_from:
        write_report(json.loads(args.report_from.read_text(encoding="utf-8")), args.results)
        return 0
    args.work = args.work.resolve()
    started = time.time()
    command = " ".join(["tools/filter_study.py", *(argv if argv is not None else sys.argv[1:])])

    from asr_transfer.fileio import read_manifest
    from asr_transfer.inference.filter import filter_manifest
    from asr_transfer.layout import summary_path

    corpus, data = args.work / "cv", args.work / "data"
    if not summary_path(data).is_file():
        log(f"synth-cv and prepare-cv: {args.clips} clips -> {data}")
        cli("synth-cv", str(corpus), "--lang", "de", "--clips", str(args.clips), "--seed", str(args.seed),
            "--jobs", str(args.jobs))  # fmt: skip
        cli("prepare-cv", str(corpus), str(data), "--lang", "de", "--jobs", str(args.jobs))
    noisy = data / "train_noisy.json"
    planted = set(plant_mismatches(data / "train.json", noisy, args.planted, args.seed))
    vocab = cli("train-tokenizer", str(args.work / "tokenizers"), "--manifest", str(data / "train.json"),
                "--lang", "de", "--kind", "char", "--print-dir")  # fmt: skip
    cli("train-tokenizer", str(args.work / "tokenizers"), "--manifest", str(data / "train.json"), "--lang", "de",
        "--kind", "char")  # fmt: skip

    def count(path: Path) -> int:
        return sum(1 for _ in read_manifest(str(path)))

    runs = {"uncleaned": train_and_test("uncleaned", noisy, args, data, vocab)}
    cleaned = data / "train_cleaned.json"
    log(f"filter {noisy} with {runs['uncleaned']['model']} -> {cleaned}")
    result = filter_manifest(
        runs["uncleaned"]["model"], str(noisy), str(cleaned), args.max_cer, lang="de", progress=False
    )
    runs["cleaned"] = train_and_test("cleaned", cleaned, args, data, vocab)
    if not args.no_reference:
        runs["original"] = train_and_test("original", data / "train.json", args, data, vocab)
    for name, manifest in (("uncleaned", noisy), ("cleaned", cleaned), ("original", data / "train.json")):
        if name in runs:
            runs[name]["lines"] = count(manifest)

    scored = [u for u in result.utterances if u.cer is not None]
    results = {
        "date": datetime.date.today().isoformat(),
        "cpus": os.cpu_count(),
        "seed": args.seed,
        "clips": args.clips,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "planted_share": args.planted,
        "max_cer": args.max_cer,
        "train": count(data / "train.json"),
        "dev": count(data / "dev.json"),
        "test": count(data / "test.json"),
        "filter_summary": result.summary,
        "at_max_cer": separation(result.utterances, planted, args.max_cer),
        "thresholds": [separation(result.utterances, planted, threshold) for threshold in THRESHOLDS],
        "cer_good": quantiles([u.cer for u in scored if u.entry["audio_filepath"] not in planted]),
        "cer_planted": quantiles([u.cer for u in scored if u.entry["audio_filepath"] in planted]),
        "runs": runs,
        "minutes": round((time.time() - started) / 60, 1),
        "command": command,
    }
    write_report(results, args.results)
    log(f"wrote {args.results / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    from asr_transfer.errors import run_tool

    sys.exit(run_tool(main))
