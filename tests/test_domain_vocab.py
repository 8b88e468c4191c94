"""The domain's vocabulary: phrase boosting (--boost, tune-boost), the domain LM chain, the machine hall.

Real parts throughout: the shipped English char base, espeak-ng speech of the synthetic machine hall, NeMo's
boosting tree in its batched CTC beam search, train-lm and tune-lm.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile

from asr_transfer.errors import UserError
from asr_transfer.inference.boost import Boost, read_phrases, term_recall, tune_boost
from asr_transfer.inference.evaluate import evaluate
from asr_transfer.synth.machine_hall import NOISE_CONDITIONS, TERMS, make_machine_hall
from tests.conftest import REPO

SHIPPED = REPO / "recipes" / "en_base" / "model" / "en_tiny_quartznet_char.nemo"


@pytest.fixture(scope="module")
def hall(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("hall")
    return make_machine_hall(str(out), train=2, dev=6, test=3, noise_clips=2, domain_text=50, seed=1)


def rows(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def test_machine_hall_domain(hall):
    """At least 40 terms, every sentence holds one, noisy dev/test at their stored SNR in 0-10 dB, noise sets
    of disjoint conditions, and no dev or test sentence in the LM text."""
    assert len(TERMS) >= 40 and len(set(TERMS)) == len(TERMS)
    for split in ("train", "dev", "test"):
        for row in rows(hall[f"clean_{split}"]):
            assert any(f" {term}" in f" {row['text']}" for term in TERMS), row["text"]
    hums = [NOISE_CONDITIONS[split]["hum"] for split in ("train", "dev", "test")]
    assert all(a[1] < b[0] for a, b in zip(hums, hums[1:], strict=False))
    clean = {row["text"]: row["audio_filepath"] for row in rows(hall["clean_test"])}
    for row in rows(hall["noisy_test"]):
        assert 0 <= row["snr_db"] <= 10
        speech = soundfile.read(clean[row["text"]], dtype="float64")[0]
        mixed = soundfile.read(row["audio_filepath"], dtype="float64")[0]
        scale = np.dot(mixed, speech) / np.dot(speech, speech)  # the mix may be scaled down to avoid clipping
        noise = mixed - scale * speech
        measured = 10 * np.log10(np.mean((scale * speech) ** 2) / np.mean(noise**2))
        assert measured == pytest.approx(row["snr_db"], abs=0.3)
    held_out = {row["text"] for split in ("dev", "test") for row in rows(hall[f"clean_{split}"])}
    with open(hall["domain_text"], encoding="utf-8") as handle:
        assert not held_out & {line.strip() for line in handle}


def test_boost_list_parsing_and_unwritable_terms(hall, tmp_path, capsys):
    from asr_transfer.cli import main as cli_main

    terms = tmp_path / "terms.txt"
    terms.write_text("# machine hall\nHydraulic\t2.5\nconveyor belt\ntorque 0.5\nhydraulic\n\n", encoding="utf-8")
    assert [(p.text, p.weight) for p in read_phrases(str(terms))] == [
        ("hydraulic", 2.5),
        ("conveyor belt", None),
        ("torque", 0.5),
    ]
    (tmp_path / "empty.txt").write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(UserError, match="holds no term"):
        read_phrases(str(tmp_path / "empty.txt"))
    # terms the char model cannot write: one error line listing them all, exit status 2, nothing decoded
    bad = tmp_path / "bad.txt"
    bad.write_text("hydraulic\ncafé\nnaïve\n", encoding="utf-8")
    status = cli_main(["evaluate", "--model", str(SHIPPED), "--manifest", hall["clean_dev"], "--boost", str(bad),
                       "--out", str(tmp_path / "never")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and not (tmp_path / "never").exists()
    assert err[0].startswith("error: ") and "2 term(s) the model's vocabulary cannot write: café, naïve;" in err[0]


def test_tune_boost_and_evaluate_with_the_domain_lm(hall, tmp_path):
    """train-lm --text (dev and test excluded) and tune-lm on dev, then tune-boost on dev with that LM, then
    evaluate --lm-params --boost-params: the boost weight changes what is decoded (a large weight writes
    more domain terms than none), and the chosen weight is the grid's best on dev."""
    from asr_transfer.cli import main as cli_main

    lm, params, boosted = tmp_path / "domain.arpa", tmp_path / "lm.json", tmp_path / "boost.json"
    assert cli_main(["train-lm", str(lm), "--model", str(SHIPPED), "--order", "4", "--text", hall["domain_text"],
                     "--lang", "en", "--exclude", hall["clean_dev"], "--exclude", hall["clean_test"]]) == 0  # fmt: skip
    assert cli_main(["tune-lm", "--model", str(SHIPPED), "--lm", str(lm), "--manifest", hall["clean_dev"],
                     "--out", str(params), "--lang", "en", "--alphas", "0.5", "--betas", "0",
                     "--beam-size", "4"]) == 0  # fmt: skip
    from asr_transfer.inference.model import decoding_from_args

    class Args:
        lm_params, lm, decoding, beam_size = str(params), None, "beam", 4

    tuned = tune_boost(str(SHIPPED), hall["terms"], hall["clean_dev"], str(boosted), [0.0, 4.0],
                       decoding_from_args(Args), lang="en")  # fmt: skip
    grid = {point["boost_alpha"]: point for point in tuned["grid"]}
    assert set(grid) == {0.0, 4.0} and tuned["boost_alpha"] in grid
    assert grid[tuned["boost_alpha"]]["wer"] == min(point["wer"] for point in grid.values())
    assert all(point["term_count"] > 0 for point in grid.values())
    # the boost changes decoding: at alpha 4 more domain terms are written than without it
    summaries = {}
    for alpha in (0.0, 4.0):
        out = tmp_path / f"eval_{alpha:g}"
        summaries[alpha] = evaluate(str(SHIPPED), hall["clean_dev"], str(out), decoding_from_args(Args), lang="en",
                                    boost=Boost(hall["terms"], alpha, lang="en"))  # fmt: skip
        hyps = [row["hypothesis"] for row in rows(str(out / "hypotheses.jsonl"))]
        summaries[alpha]["written"] = sum(f" {hyp} ".count(f"{term}") for hyp in hyps for term in TERMS)
    assert summaries[4.0]["written"] > summaries[0.0]["written"]
    assert "boost(alpha=4" in summaries[4.0]["decoding"] and summaries[4.0]["boost"]["term_count"] > 0
    # evaluate --boost-params reads tune-boost's file
    assert cli_main(["evaluate", "--model", str(SHIPPED), "--manifest", hall["clean_dev"], "--lm-params", str(params),
                     "--boost-params", str(boosted), "--out", str(tmp_path / "eval_cli")]) == 0  # fmt: skip
    summary = json.loads((tmp_path / "eval_cli" / "summary.json").read_text())
    assert summary["boost"]["alpha"] == tuned["boost_alpha"]


def test_term_recall_counts_whole_words():
    refs = ["check the rotor and the stator", "the rotor rotor", None]
    hyps = ["check the rotors and the stator", "the rotor", "rotor"]
    assert term_recall(refs, hyps, ["rotor", "stator"]) == {"term_recall": 2 / 4, "term_count": 4}


@pytest.mark.slow
def test_domain_recipe_noise_lm_and_boost_stages(hall, tmp_path):
    """recipes/domain/run.sh: --noise DIR becomes a noise manifest in stage 2 (prepare-noise); stage 6 builds
    the --domain_text LM without dev sentences (one planted in the text), tunes it and the --boost weight on
    dev, and decodes dev with each."""
    import shutil
    import subprocess

    text = tmp_path / "domain.txt"
    dev_sentence = rows(hall["clean_dev"])[0]["text"]
    text.write_text(open(hall["domain_text"], encoding="utf-8").read() + dev_sentence + "\n", encoding="utf-8")
    common = ["--model", str(SHIPPED), "--train", hall["clean_train"], "--dev", hall["clean_dev"], "--lang", "en",
              "--out", str(tmp_path / "dom")]  # fmt: skip

    def recipe(*args):
        result = subprocess.run(["bash", str(REPO / "recipes" / "domain" / "run.sh"), *common, *args],
                                capture_output=True, text=True, timeout=900)  # fmt: skip
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        return result.stdout

    noise_dir = os.path.splitext(hall["noise_train"])[0]  # the folder of the training noise clips
    recipe("--stage", "2", "--stop_stage", "2", "--noise", noise_dir)
    assert len(rows(str(tmp_path / "dom" / "noise" / "noise.json"))) == 2
    # stage 6 reads stage 5's export: the shipped base stands in for it
    shutil.copy(SHIPPED, tmp_path / "dom" / "en_from_en_tiny_quartznet_char_tuned.nemo")
    recipe("--stage", "6", "--stop_stage", "6", "--domain_text", str(text), "--boost", hall["terms"],
           "--lm_order", "3", "--lm_alphas", "0.5", "--lm_betas", "0",
           "--boost_alphas", "0,1")  # fmt: skip
    record = json.loads((tmp_path / "dom" / "lm" / "domain.arpa.json").read_text())
    assert record["excluded"] == 1
    for name in ("eval_lm_dev", "eval_boost_dev"):
        summary = json.loads((tmp_path / "dom" / name / "summary.json").read_text())
        assert summary["wer"] is not None and ("boost" in summary) == name.startswith("eval_boost")
