"""train-lm: modified Kneser-Ney counts by hand, normalization after backoff, NeMo's ARPA loader, leakage."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from asr_transfer.lm import ngram
from asr_transfer.lm.ngram import BOS, EOS
from tests.conftest import ENGLISH

A, B, C = 0, 1, 2


def test_counts_match_hand_counts(tmp_path):
    # sentences "a b a" and "b a": padded <s> a b a </s> and <s> b a </s>
    counts = ngram.count_sentences([[A, B, A], [B, A]], 3, str(tmp_path), spill_every=2)  # spill often
    highest = dict(counts.highest.sorted_stream())
    assert highest == {(BOS, A, B): 1, (A, B, A): 1, (B, A, EOS): 2, (BOS, B, A): 1}
    assert counts.sentence_initial == Counter({(BOS,): 2, (BOS, A): 1, (BOS, B): 1})
    tables = ngram.lower_order_counts(counts, highest)
    # bigrams: continuation counts (distinct left words) except those starting with <s> (raw counts)
    assert tables[2] == Counter({(A, B): 1, (B, A): 2, (A, EOS): 1, (BOS, A): 1, (BOS, B): 1})
    # unigrams: distinct tokens before them (<s> counts: "b a", "<s> a"); <s> itself: raw count
    assert tables[1] == Counter({(A,): 2, (B,): 2, (EOS,): 1, (BOS,): 2})


def test_discounts_follow_chen_and_goodman():
    n1, n2, n3, n4 = 10, 5, 3, 2
    y = n1 / (n1 + 2 * n2)
    expected = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    assert ngram.discounts(Counter({1: n1, 2: n2, 3: n3, 4: n4})) == pytest.approx(expected)


@pytest.mark.parametrize("order", [2, 3, 5])
def test_every_context_sums_to_one_after_backoff(tmp_path, order):
    import random

    rng = random.Random(order)
    sentences = [[rng.choice(range(6)) for _ in range(rng.randint(1, 12))] for _ in range(300)]
    out = tmp_path / "lm.arpa"
    summary = ngram.write_arpa(sentences, order, vocab_size=8, out_path=str(out), spill_every=500)
    assert summary.sentences == 300 and set(summary.ngrams) == set(range(1, order + 1))
    model = ngram.read_arpa(str(out))
    contexts = {(), *model.backoffs}
    for n in range(2, order + 1):
        contexts |= {ngram_[:-1] for ngram_ in model.probabilities.get(n, {})}
    following = ngram.vocabulary(8)  # two tokens never seen: they get only backed-off mass
    for context in contexts:
        total = sum(model.probability(context, token) for token in following)
        assert total == pytest.approx(1.0, abs=1e-4), context
    header = out.read_text().split("\n\n")[0].splitlines()
    assert header[1:] == [f"ngram {n}={summary.ngrams[n]}" for n in range(1, order + 1)]


def test_nemo_reads_the_arpa_and_beam_batch_decodes_with_it(tmp_path):
    import torch
    from nemo.collections.asr.parts.submodules.ngram_lm import NGramGPULanguageModel

    sentences = [[A, B, C, A], [C, B, A], [A, A, B]]
    out = tmp_path / "lm.arpa"
    ngram.write_arpa(sentences, 3, vocab_size=4, out_path=str(out))
    lm = NGramGPULanguageModel.from_file(str(out), vocab_size=4, normalize_unk=False)
    labels = torch.tensor([[A, B, C, A], [C, C, C, C]])
    scores = lm.score_sentences(labels, torch.tensor([4, 4]), bos=True).sum(-1)
    ours = ngram.read_arpa(str(out))

    def log_prob(sentence):
        history, total = (BOS,), 0.0
        for token in sentence:
            total += torch.log(torch.tensor(ours.probability(history, token))).item()
            history = (*history, token)
        return total

    assert scores[0].item() == pytest.approx(log_prob([A, B, C, A]), abs=1e-3)
    assert scores[0] > scores[1]  # a seen sentence beats an unseen one
    assert scores[1].item() == pytest.approx(log_prob([C, C, C, C]), abs=1e-3)


def test_train_lm_removes_excluded_sentences_and_reports_rejects(tmp_path, tiny_base):
    from asr_transfer.cli import main as cli_main

    train = tmp_path / "train.json"
    dev = tmp_path / "dev.json"
    rows = ["the cat sat", "a dog ran", "the cat sat", "über alles"]  # "ü" is not in the English labels
    train.write_text(
        "".join(
            json.dumps({"audio_filepath": f"{i}.wav", "duration": 1.0, "text": t}) + "\n" for i, t in enumerate(rows)
        )
    )
    dev.write_text(json.dumps({"audio_filepath": "d.wav", "duration": 1.0, "text": "a dog ran"}) + "\n")
    extra = tmp_path / "extra.txt"
    extra.write_text("The cat ran!\n3 cats\n")
    out = tmp_path / "lm" / "char_4gram.arpa"
    argv = ["train-lm", "--model", tiny_base, "--manifest", str(train), "--text", str(extra), "--lang", "en",
            "--exclude", str(dev), "--order", "4", str(out)]  # fmt: skip
    assert cli_main(argv) == 0
    report = json.loads((tmp_path / "lm" / "char_4gram.arpa.json").read_text())
    assert report["excluded"] == 1 and report["sentences"] == 3
    assert sum(report["rejected"].values()) == 2  # the umlaut line and the digits line
    rejects = (tmp_path / "lm" / "char_4gram.arpa.rejects.tsv").read_text().splitlines()
    assert len(rejects) == 1 + 1 + 2  # header, excluded, rejected: every input row is accounted for
    model = ngram.read_arpa(str(out))
    t = ENGLISH.index("t")
    assert model.probability((BOS,), t) > model.probability((BOS,), ENGLISH.index("z"))


def test_train_lm_errors_are_one_line(tmp_path, tiny_base, capsys):
    from asr_transfer.cli import main as cli_main

    empty = tmp_path / "empty.json"
    empty.write_text("")
    assert cli_main(["train-lm", "--model", tiny_base, "--manifest", str(empty), str(tmp_path / "x.arpa")]) == 2
    assert (
        cli_main(["train-lm", "--model", tiny_base, "--manifest", str(empty), "--order", "1", str(tmp_path / "x.arpa")])
        == 2
    )
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "holds no utterances" in errors[0] and "--order 1" in errors[1]


def test_tune_lm_then_evaluate_and_transcribe_with_the_tuned_lm(tmp_path, english_model_and_data):
    from asr_transfer.cli import main as cli_main

    model, train, dev = english_model_and_data
    lm = tmp_path / "lm.arpa"
    assert cli_main(["train-lm", "--model", model, "--manifest", train, "--exclude", dev, "--order", "5", str(lm)]) == 0
    params = tmp_path / "params.json"
    argv = ["tune-lm", "--model", model, "--lm", str(lm), "--manifest", dev, "--alphas", "0.3,1.0",
            "--betas", "0,1", "--beam-size", "4", "--out", str(params)]  # fmt: skip
    assert cli_main(argv) == 0
    tuned = json.loads(params.read_text())
    assert len(tuned["grid"]) == 4 and tuned["metric"] == "wer" and tuned["beam_size"] == 4
    best = min(point["wer"] for point in tuned["grid"])
    assert tuned["dev"]["beam+lm"] == best and {"greedy", "beam4"} <= set(tuned["dev"])
    out = tmp_path / "eval"
    assert (
        cli_main(["evaluate", "--model", model, "--manifest", dev, "--lm-params", str(params), "--out", str(out)]) == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["decoding"].startswith("beam4+lm(") and summary["utterances_per_second"] > 0
    # the tuned point, decoded again by evaluate, gives the WER tune-lm measured
    assert summary["wer"] == pytest.approx(best)
    # the LM is really fused: a heavy weight changes the transcripts
    plain = tmp_path / "plain"
    heavy = tmp_path / "heavy"
    cli_main(["evaluate", "--model", model, "--manifest", dev, "--decoding", "beam", "--out", str(plain)])
    cli_main(["evaluate", "--model", model, "--manifest", dev, "--lm", str(lm), "--lm-alpha", "5", "--out", str(heavy)])
    assert (plain / "hypotheses.jsonl").read_text() != (heavy / "hypotheses.jsonl").read_text()


def test_an_lm_of_another_model_is_refused(tmp_path, english_model_and_data, capsys):
    from asr_transfer.cli import main as cli_main

    model, _, dev = english_model_and_data
    lm = tmp_path / "big.arpa"
    ngram.write_arpa([[0, 200, 3]], 2, vocab_size=300, out_path=str(lm))
    assert cli_main(["evaluate", "--model", model, "--manifest", dev, "--lm", str(lm)]) == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "does not fit this model" in error[0]
