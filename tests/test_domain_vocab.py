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


def shortest_clips(manifest: str, count: int, path) -> str:
    """A manifest at ``path`` of the ``count`` shortest lines of ``manifest`` (decoding time is per frame)."""
    picked = sorted(rows(manifest), key=lambda row: row["duration"])[:count]
    path.write_text("".join(json.dumps(row) + "\n" for row in picked), encoding="utf-8")
    return str(path)


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


def test_boost_flags_on_the_command_line(hall, tmp_path):
    """tune-boost --boost-score, evaluate --boost --boost-alpha --boost-score, and transcribe --boost
    --boost-alpha --boost-score and --boost-params, each through the console script's main() on the two
    shortest dev clips, at alpha 1.5 and score 0.5: alpha 1 or score 1 (a flag ignored) decodes other
    transcripts there, so the commands agree only if every flag is used. tune-boost records the score and
    decodes with it (its grid point scores what evaluate scores); evaluate reports alpha and score;
    transcribe with the flags, and with tune-boost's file (phrase list, alpha, score and beam size read from
    it), writes evaluate's hypotheses, which hold more domain terms than plain beam search."""
    from asr_transfer.cli import main as cli_main

    common = ["--model", str(SHIPPED), "--manifest", shortest_clips(hall["clean_dev"], 2, tmp_path / "dev.json")]
    weights = ["--boost-alpha", "1.5", "--boost-score", "0.5"]

    def transcripts(name: str, *args: str) -> list[str]:
        out = tmp_path / f"{name}.json"
        assert cli_main(["transcribe", *common, "--out", str(out), *args]) == 0
        return [row["pred_text"] for row in rows(str(out))]

    params = tmp_path / "boost.json"
    assert cli_main(["tune-boost", *common, "--boost", hall["terms"], "--out", str(params), "--alphas", "1.5",
                     "--boost-score", "0.5", "--beam-size", "2"]) == 0  # fmt: skip
    tuned = json.loads(params.read_text())
    assert (tuned["boost_alpha"], tuned["boost_score"], tuned["beam_size"]) == (1.5, 0.5, 2)
    assert cli_main(["evaluate", *common, "--boost", hall["terms"], *weights, "--beam-size", "2",
                     "--out", str(tmp_path / "eval")]) == 0  # fmt: skip
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["decoding"] == "beam2+boost(alpha=1.5, score=0.5, terms.txt)"
    assert (summary["boost"]["alpha"], summary["boost"]["score"]) == (1.5, 0.5)
    (point,) = tuned["grid"]
    assert (summary["cer"], summary["boost"]["term_recall"]) == (point["cer"], point["term_recall"])
    evaluated = [row["hypothesis"] for row in rows(str(tmp_path / "eval" / "hypotheses.jsonl"))]
    assert transcripts("flags", "--boost", hall["terms"], *weights, "--beam-size", "2") == evaluated
    assert transcripts("params", "--boost-params", str(params)) == evaluated
    plain = transcripts("plain", "--decoding", "beam", "--beam-size", "2")
    assert plain != evaluated
    written = [sum(text.count(term) for text in texts for term in TERMS) for texts in (plain, evaluated)]
    assert written[1] > written[0], (plain, evaluated)


def test_boost_flags_that_would_be_ignored_are_refused(hall, tmp_path, capsys):
    """--boost-alpha/--boost-score beside --boost-params (which brings tune-boost's) or without any phrase
    list, and a --boost-score that is not positive: one error line, exit status 2, before any model loads."""
    from asr_transfer.cli import main as cli_main

    common = ["--model", str(SHIPPED), "--manifest", hall["clean_dev"]]
    params = str(tmp_path / "boost.json")  # never read: the flags are refused first
    cases = (
        (["evaluate", *common, "--boost-params", params, "--boost-alpha", "2"], "--boost-alpha would be ignored"),
        (["transcribe", *common, "--boost-score", "2", "--boost-alpha", "1"], "would be ignored without --boost"),
        (["evaluate", *common, "--boost", hall["terms"], "--boost-score", "0"], "--boost-score 0 must be a positive"),
        (["tune-boost", *common, "--boost", hall["terms"], "--out", params, "--boost-score", "-1"], "positive"),
    )
    for argv, wanted in cases:
        status = cli_main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(err) == 1 and err[0].startswith("error: ") and wanted in err[0], (argv, err)
        assert "; " in err[0]
    assert not (tmp_path / "boost.json").exists()


def test_term_recall_counts_whole_words():
    refs = ["check the rotor and the stator", "the rotor rotor", None]
    hyps = ["check the rotors and the stator", "the rotor", "rotor"]
    assert term_recall(refs, hyps, ["rotor", "stator"]) == {"term_recall": 2 / 4, "term_count": 4}


@pytest.mark.slow
def test_domain_recipe_noise_lm_and_boost_stages(hall, tmp_path):
    """recipes/domain/run.sh with --lang, field recordings and the domain's vocabulary. Stage 1 scores the base
    in --lang's language and metric. Stage 2 turns --noise and --rir folders into manifests (prepare-noise),
    and stage 3 fine-tunes with them and with --noise_snr, --noise_prob and --rir_prob (read back from the
    run's finetune_config.yaml). Stage 6 builds the --domain_text LM without dev and --test sentences (one of
    each planted in the text), tunes it and the --boost weight on dev, and decodes dev and --test with each."""
    import shutil
    import subprocess

    from omegaconf import OmegaConf

    # every command of the recipe imports NeMo, which costs more than decoding: two dev clips and one test clip
    dev = shortest_clips(hall["clean_dev"], 2, tmp_path / "dev.json")
    test = shortest_clips(hall["clean_test"], 1, tmp_path / "test.json")
    text = tmp_path / "domain.txt"
    planted = [rows(manifest)[0]["text"] for manifest in (dev, test)]
    text.write_text(open(hall["domain_text"], encoding="utf-8").read() + "\n".join(planted) + "\n", encoding="utf-8")
    rooms = tmp_path / "rooms"  # one room impulse response: a direct path, then decaying reflections
    rooms.mkdir()
    rng = np.random.default_rng(0)
    rir = rng.standard_normal(4000) * np.exp(-np.arange(4000) / 480.0) * 0.3
    rir[0] = 1.0
    soundfile.write(str(rooms / "hall.wav"), (0.9 * rir).astype(np.float32), 16000, subtype="PCM_16")
    out = tmp_path / "dom"
    common = ["--model", str(SHIPPED), "--train", hall["clean_train"], "--dev", dev, "--lang", "en", "--test", test,
              "--out", str(out)]  # fmt: skip

    def recipe(*args):
        result = subprocess.run(["bash", str(REPO / "recipes" / "domain" / "run.sh"), *common, *args],
                                capture_output=True, text=True, timeout=900)  # fmt: skip
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        return result.stdout

    noise_dir = os.path.splitext(hall["noise_train"])[0]  # the folder of the training noise clips
    steps = "trainer.max_steps=1 trainer.val_check_interval=1 data.batch_size=2 trainer.enable_progress_bar=false"
    recipe("--stage", "1", "--stop_stage", "3", "--noise", noise_dir, "--noise_snr", "3,9", "--noise_prob", "0.7",
           "--rir", str(rooms), "--rir_prob", "0.3", "--overrides", steps)  # fmt: skip
    before = json.loads((out / "eval_before_new" / "summary.json").read_text())
    assert (before["language"], before["primary_metric"]) == ("en", "wer")  # the base records no language
    assert len(rows(str(out / "noise" / "noise.json"))) == 2 and len(rows(str(out / "rir" / "rir.json"))) == 1
    (saved,) = (out / "finetune").glob("*/*/finetune_config.yaml")
    data = OmegaConf.load(saved).data
    noise = (str(out / "noise" / "noise.json"), [3, 9], 0.7)
    assert (data.noise_manifest, list(data.noise_snr_db), data.noise_prob) == noise
    assert (data.rir_manifest, data.rir_prob) == (str(out / "rir" / "rir.json"), 0.3)
    assert list((saved.parent / "checkpoints").glob("*.ckpt")), "stage 3 trained no step"
    # stage 6 reads stage 5's export: the shipped base stands in for it
    shutil.copy(SHIPPED, out / "en_from_en_tiny_quartznet_char_tuned.nemo")
    recipe("--stage", "6", "--stop_stage", "6", "--domain_text", str(text), "--boost", hall["terms"],
           "--lm_order", "3", "--lm_alphas", "0.5", "--lm_betas", "0",
           "--boost_alphas", "0,1")  # fmt: skip
    record = json.loads((out / "lm" / "domain.arpa.json").read_text())
    assert record["excluded"] == 2
    for split, manifest in (("dev", dev), ("test", test)):
        for kind in ("lm", "boost"):
            summary = json.loads((out / f"eval_{kind}_{split}" / "summary.json").read_text())
            assert summary["manifest"] == manifest and summary["utterances"] == len(rows(manifest))
            assert summary["wer"] is not None and ("boost" in summary) == (kind == "boost")
            assert summary["decoding"].startswith("beam") and "+lm(" in summary["decoding"]
