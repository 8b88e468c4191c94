#!/usr/bin/env python
"""Domain adaptation to a noisy "machine hall": noise augmentation, a domain LM and phrase boosting, measured.

In: clip counts, a step budget and a seed. The synthetic machine-hall domain is made
(:mod:`asr_transfer.synth.machine_hall`: technical sentences by espeak-ng, machine noise by code, a
different noise set for training, dev and test, dev and test mixed at 0-10 dB SNR) and a small clean
English test set (``synth-cv en``, for forgetting). Arms, all from the shipped English base
(``en_tiny_quartznet_char.nemo``), evaluated on the noisy domain test and the clean English test:

1. the base as is;
2. fine-tuned on the clean domain audio (``recipes/conf/domain.yaml``; dev: the noisy domain dev);
3. fine-tuned the same way with noise augmentation from the training noise set (``data.noise_manifest``,
   ``data.noise_snr_db=[0,10]``);
4. arm 3 with the domain LM (``train-lm --text domain_text.txt``, dev and test sentences excluded; ``tune-lm``
   on dev);
5. arm 4 plus phrase boosting of the 48 terms (``tune-boost`` on dev).

Out: ``--results`` (default docs/results/domain) gets ``README.md`` (the table: WER and term recall, the
command, date, machine) and ``results.json``; data, runs and evaluations stay in ``--work``. A rerun reuses
every finished step (data, runs, evaluations, LM), so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE = REPO / "recipes" / "en_base" / "model" / "en_tiny_quartznet_char.nemo"
CONFIG = REPO / "recipes" / "conf" / "domain.yaml"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def cli(*args: str) -> str:
    """``asr-transfer ARGS`` in this process (NeMo is imported once for the whole study); its stdout."""
    import contextlib
    import io

    from asr_transfer.cli import main as cli_main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli_main(list(args))
    if status:
        raise SystemExit(f"asr-transfer {' '.join(args)} failed with status {status}")
    return out.getvalue().strip()


def cli_process(*args: str) -> None:
    """``asr-transfer ARGS`` in its own process: each training run starts from a fresh Lightning and NeMo."""
    result = subprocess.run([sys.executable, "-m", "asr_transfer.cli", *args])
    if result.returncode:
        raise SystemExit(f"asr-transfer {' '.join(args)} failed with status {result.returncode}")


def make_data(args) -> dict:
    from asr_transfer.synth.machine_hall import make_machine_hall

    data = args.work / "data"
    done = data / "paths.json"
    if not done.is_file():
        log(f"machine hall: {args.train} train, {args.dev} dev, {args.test} test clips -> {data}")
        paths = make_machine_hall(str(data), args.train, args.dev, args.test, seed=args.seed)
        done.write_text(json.dumps(paths, indent=2), encoding="utf-8")
    paths = json.loads(done.read_text(encoding="utf-8"))
    english = args.work / "english" / "data" / "test.json"
    if not english.is_file():
        from asr_transfer.manifests.pipeline import BuildOptions
        from asr_transfer.manifests.prepare_cv import prepare_common_voice
        from asr_transfer.synth.synth_cv import synth_cv

        log("clean English test (synth-cv en)")
        corpus = synth_cv("en", args.english, str(args.work / "english" / "cv"), seed=args.seed + 100, progress=False)
        prepare_common_voice(str(corpus.parent.parent), str(english.parent), "en", BuildOptions(progress=False))
    paths["english_test"] = str(english)
    return paths


def finetune(name: str, args, paths: dict, extra: list[str]) -> str:
    """Fine-tune the base (resumes a finished or interrupted run); returns the best checkpoint's .nemo."""
    overrides = [
        "--config", str(CONFIG), "--exp-dir", str(args.work / "runs"), "--name", name, "--steps", str(args.steps),
        "--val-every", str(max(10, args.steps // 4)), "--seed", str(args.seed), "--no-progress-bar",
        "lang=en", f"init.nemo={BASE}", f"data.train_manifest={paths['clean_train']}",
        f"data.dev_manifest={paths['noisy_dev']}", f"model.optim.lr={args.lr}", *extra,
    ]  # fmt: skip
    run = cli("finetune", *overrides, "--print", "run-dir")
    marker = args.work / "runs" / f"{name}.done"
    if not marker.is_file():
        log(f"fine-tune {name} ({args.steps} steps) -> {run}")
        started = time.time()
        cli_process("finetune", *overrides)
        marker.write_text(f"{time.time() - started:.1f}\n", encoding="utf-8")
    return cli("export", "--print-best", run)


def evaluate(name: str, model: str, manifest: str, args, *decoding: str) -> dict:
    """Evaluate (once; reused on rerun), with term recall of the domain terms."""
    from asr_transfer.inference.boost import term_recall
    from asr_transfer.layout import summary_path
    from asr_transfer.synth.machine_hall import TERMS

    out = args.work / "eval" / name
    if not summary_path(out).is_file():
        log(f"evaluate {name}")
        cli(
            "evaluate",
            "--model",
            model,
            "--manifest",
            manifest,
            "--lang",
            "en",
            "--out",
            str(out),
            "--batch-size",
            "64",
            *decoding,
        )
    summary = json.loads(summary_path(out).read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in (out / "hypotheses.jsonl").read_text(encoding="utf-8").splitlines()]
    recall = term_recall([row["reference"] for row in rows], [row["hypothesis"] for row in rows], list(TERMS))
    return {"wer": summary["wer"], "cer": summary["cer"], **recall, "decoding": summary["decoding"]}


def run(args) -> dict:
    started = time.time()
    paths = make_data(args)
    clean = finetune("clean", args, paths, [])
    noise_keys = [f"data.noise_manifest={paths['noise_train']}", "data.noise_snr_db=[0,10]"]
    noisy = finetune("noise_aug", args, paths, [*noise_keys, f"data.noise_prob={args.noise_prob}"])
    lm_dir = args.work / "lm"
    lm, lm_params, boost_params = lm_dir / "domain_char6.arpa", lm_dir / "lm_params.json", lm_dir / "boost.json"
    if not lm.is_file():
        log("domain LM (train-lm --text, dev and test sentences excluded)")
        cli("train-lm", str(lm), "--model", noisy, "--order", "6", "--text", paths["domain_text"], "--lang", "en",
            "--exclude", paths["noisy_dev"], "--exclude", paths["noisy_test"])  # fmt: skip
    if not lm_params.is_file():
        log("tune-lm on the noisy dev")
        cli("tune-lm", "--model", noisy, "--lm", str(lm), "--manifest", paths["noisy_dev"], "--out", str(lm_params),
            "--lang", "en", "--alphas", "0.5,1", "--betas", "1,2.5", "--beam-size", "8",
            "--batch-size", "64")  # fmt: skip
    if not boost_params.is_file():
        log("tune-boost on the noisy dev")
        cli("tune-boost", "--model", noisy, "--boost", paths["terms"], "--manifest", paths["noisy_dev"],
            "--lm-params", str(lm_params), "--out", str(boost_params), "--lang", "en",
            "--alphas", "0,0.5,1,2", "--batch-size", "64")  # fmt: skip
    arms = [
        ("base", str(BASE), []),
        ("clean fine-tune", clean, []),
        ("noise-augmented fine-tune", noisy, []),
        ("+ domain LM", noisy, ["--lm-params", str(lm_params)]),
        ("+ phrase boosting", noisy, ["--lm-params", str(lm_params), "--boost-params", str(boost_params)]),
    ]
    results = []
    for index, (arm, model, decoding) in enumerate(arms):
        row = {"arm": arm, "model": os.path.relpath(model, REPO)}
        for test, manifest in (("hall_test", paths["noisy_test"]), ("english_test", paths["english_test"])):
            row[test] = evaluate(f"{index}_{test}", model, manifest, args, *decoding)
        results.append(row)
    tuned = {
        name: json.loads(path.read_text(encoding="utf-8"))
        for name, path in (("lm", lm_params), ("boost", boost_params))
    }
    return {
        "results": results,
        "lm": {key: tuned["lm"][key] for key in ("lm_alpha", "beam_beta", "beam_size", "dev")},
        "boost": {key: tuned["boost"][key] for key in ("boost_alpha", "boost_score", "dev", "grid")},
        "minutes": round((time.time() - started) / 60, 1),
    }


def pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def write_results(summary: dict, args, command: str) -> None:
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "results.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# Machine hall: noise augmentation, a domain LM and phrase boosting, measured",
        "",
        f"Made by `{command}` on {datetime.date.today()} ({platform.machine()}, {os.cpu_count()} CPU cores shared "
        f"with other jobs; {summary['minutes']} min for the steps this run did). Seed {args.seed}.",
        "",
        f"- **Domain** (`asr_transfer/synth/machine_hall.py`): {args.train} train, {args.dev} dev, {args.test} test "
        "clips of English sentences built around 48 technical terms (hydraulic, torque, conveyor, actuator ...), "
        "espeak-ng voices disjoint across splits. Train is clean; dev and test are mixed with machine noise (hum "
        "with harmonics, low-passed broadband noise, impacts) at 0-10 dB SNR, each split from its own noise set "
        "with disjoint parameters.",
        f"- **Original domain**: clean synthetic English Common Voice (`synth-cv en`, {args.english} clips, its test "
        "split), to measure forgetting.",
        f"- **Fine-tuning**: the shipped `en_tiny_quartznet_char.nemo`, `recipes/conf/domain.yaml`, {args.steps} "
        f"steps, lr {args.lr}, best checkpoint by noisy-dev WER. Noise arm: `data.noise_manifest=` the training "
        f"noise set, `data.noise_snr_db=[0,10]`, `data.noise_prob={args.noise_prob}` (NeMo's NoisePerturbation).",
        f"- **LM**: 6-gram character LM from `domain_text.txt` (`train-lm --text`, dev and test sentences "
        f"excluded), tuned on dev: alpha {summary['lm']['lm_alpha']:g}, beta {summary['lm']['beam_beta']:g}, "
        f"beam {summary['lm']['beam_size']}.",
        f"- **Boosting**: the 48 terms (`terms.txt`) through NeMo's boosting tree in `beam_batch`, alpha tuned on "
        f"dev with the LM: {summary['boost']['boost_alpha']:g}.",
        "",
        "| arm | hall test WER | hall term recall | English test WER (forgetting) | English CER |",
        "|---|---|---|---|---|",
    ]
    for row in summary["results"]:
        hall, english = row["hall_test"], row["english_test"]
        lines.append(
            f"| {row['arm']} | {pct(hall['wer'])} | {pct(hall['term_recall'])} ({hall['term_count']} terms) | "
            f"{pct(english['wer'])} | {pct(english['cer'])} |"
        )
    lines += [
        "",
        "Term recall: the share of domain-term occurrences in the references that the hypothesis of the same "
        "utterance also holds. The LM and boosting rows decode the English test with the domain LM and terms too "
        "(what a domain-tuned decoder costs on general speech). Test sets are never used for tuning. One seed "
        "on a small synthetic domain: a few points of WER are within what another "
        "seed or espeak-ng version moves.",
        "",
        "Boost alpha on dev (with the LM): "
        + ", ".join(
            f"{point['boost_alpha']:g}: WER {pct(point['wer'])}, recall {pct(point['term_recall'])}"
            for point in summary["boost"]["grid"]
        ),
        "",
    ]
    (args.results / "README.md").write_text("\n".join(lines), encoding="utf-8")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=REPO / "exp" / "domain_study")
    parser.add_argument("--results", type=Path, default=REPO / "docs" / "results" / "domain")
    parser.add_argument("--train", type=int, default=240)
    parser.add_argument("--dev", type=int, default=40)
    parser.add_argument("--test", type=int, default=80)
    parser.add_argument("--english", type=int, default=120, help="clips of the clean English release")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--noise-prob", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    summary = run(args)
    write_results(summary, args, " ".join(["python tools/domain_study.py", *argv]))
    print((args.results / "README.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    from asr_transfer.errors import run_tool

    sys.exit(run_tool(main))
