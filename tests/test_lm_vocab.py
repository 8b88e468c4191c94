"""An LM is used only with the vocabulary it was built for: train-lm records it, every decoding command checks it.

Real parts: the shipped English char and BPE bases, tiny char models saved as .nemo, LMs built by train-lm,
and a handful of one-second clips (noise: these tests are about which LM is accepted, not about accuracy).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr_transfer.cli import main as cli_main
from tests.conftest import REPO
from tests.nemo_models import tiny_char_model

BASES = REPO / "recipes" / "en_base" / "model"
CHAR_BASE = str(BASES / "en_tiny_quartznet_char.nemo")
BPE_BASE = str(BASES / "en_tiny_fastconformer_bpe128.nemo")
SENTENCES = ["the cat sat on the mat", "a dog ran to the park", "we like green tea", "it is a sunny day"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    """A manifest of four short clips with transcripts (also the LMs' training text)."""
    root = tmp_path_factory.mktemp("lm_vocab_corpus")
    rng = np.random.default_rng(0)
    lines = []
    for number, text in enumerate(SENTENCES):
        path = root / f"clip{number}.wav"
        soundfile.write(str(path), (0.05 * rng.standard_normal(16000)).astype("float32"), 16000)
        lines.append(json.dumps({"audio_filepath": str(path), "duration": 1.0, "text": text}) + "\n")
    manifest = root / "clips.json"
    manifest.write_text("".join(lines))
    return str(manifest)


def saved_char_model(folder: Path, labels: list[str]) -> str:
    path = folder / f"char{len(labels)}.nemo"
    tiny_char_model(labels).save_to(str(path))
    return str(path)


def char_base_labels() -> list[str]:
    from asr_transfer.inference.model import load_model

    return list(load_model(CHAR_BASE, "cpu").decoder.vocabulary)


def train_lm(model: str, manifest: str, out: Path, order: int = 3) -> str:
    assert cli_main(["train-lm", "--model", model, "--manifest", manifest, "--order", str(order), str(out)]) == 0
    return str(out)


@pytest.fixture(scope="module")
def lms(corpus, tmp_path_factory) -> dict:
    """The char base with its own LM; a char model of the same size whose labels are in another order, with its
    LM; the BPE base's LM and a char model with as many labels as the BPE base has pieces."""
    root = tmp_path_factory.mktemp("lm_vocab_models")
    labels = char_base_labels()
    (root / "shuffled").mkdir()
    shuffled = saved_char_model(root / "shuffled", labels[::-1])
    (root / "wide").mkdir()
    extra = [chr(code) for code in range(0x100, 0x100 + 128 - len(labels))]  # letters no English text uses
    wide = saved_char_model(root / "wide", labels + extra)
    return {
        "base_lm": train_lm(CHAR_BASE, corpus, root / "base.arpa"),
        "shuffled": shuffled,
        "shuffled_lm": train_lm(shuffled, corpus, root / "shuffled.arpa"),
        "bpe_lm": train_lm(BPE_BASE, corpus, root / "bpe.arpa"),
        "wide": wide,
        "root": root,
    }


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def refused(argv: list[str], capsys) -> str:
    assert cli_main(argv) == 2
    return one_error(capsys)


def evaluate_argv(model: str, manifest: str, lm: str) -> list[str]:
    return ["evaluate", "--model", model, "--manifest", manifest, "--lm", lm]


def test_an_lm_built_for_the_model_is_accepted_and_decodes(tmp_path, corpus, lms, capsys):
    from asr_transfer.inference.model import load_model
    from asr_transfer.lm.train import vocabulary_digest

    record = json.loads(Path(lms["base_lm"] + ".json").read_text())
    assert record["vocabulary"] == {
        "kind": "char",
        "size": 28,
        "digest": vocabulary_digest(load_model(CHAR_BASE, "cpu")),
    }
    out = tmp_path / "eval"
    assert cli_main([*evaluate_argv(CHAR_BASE, corpus, lms["base_lm"]), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "+lm(" in summary["decoding"] and summary["utterances"] == len(SENTENCES)
    params = tmp_path / "params.json"
    argv = ["tune-lm", "--model", CHAR_BASE, "--lm", lms["base_lm"], "--manifest", corpus, "--alphas", "0.5",
            "--betas", "0", "--beam-size", "2", "--out", str(params)]  # fmt: skip
    assert cli_main(argv) == 0
    capsys.readouterr()
    argv = ["transcribe", "--model", CHAR_BASE, "--manifest", corpus, "--lm-params", str(params)]
    assert cli_main(argv) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(SENTENCES)
    # an LM without a record (copied without its JSON, or from an older train-lm) whose unigrams are exactly
    # this model's token symbols is accepted
    bare = tmp_path / "bare.arpa"
    shutil.copy(lms["base_lm"], bare)
    assert cli_main(evaluate_argv(CHAR_BASE, corpus, str(bare))) == 0


@pytest.mark.parametrize("command", ["evaluate", "transcribe", "tune-lm"])
def test_an_lm_of_a_same_size_model_with_other_labels_is_refused(tmp_path, corpus, lms, capsys, command):
    out = tmp_path / "params.json"
    argv = [command, "--model", CHAR_BASE, "--manifest", corpus, "--lm", lms["shuffled_lm"]]
    error = refused(argv + (["--out", str(out)] if command == "tune-lm" else []), capsys)
    assert "does not fit this model" in error and lms["shuffled"] in error
    assert "28 char tokens with other labels" in error and "rebuild it with asr-transfer train-lm --model" in error
    if command == "tune-lm":
        assert CHAR_BASE in error and not out.exists()


def test_lm_params_tuned_for_another_model_are_refused(tmp_path, corpus, lms, capsys):
    params = tmp_path / "params.json"
    argv = ["tune-lm", "--model", lms["shuffled"], "--lm", lms["shuffled_lm"], "--manifest", corpus,
            "--alphas", "0.5", "--betas", "0", "--beam-size", "2", "--out", str(params)]  # fmt: skip
    assert cli_main(argv) == 0
    capsys.readouterr()
    error = refused(["evaluate", "--model", CHAR_BASE, "--manifest", corpus, "--lm-params", str(params)], capsys)
    assert "does not fit this model" in error and lms["shuffled"] in error


def test_an_lm_of_a_bpe_model_is_refused_by_a_char_model_of_equal_size(corpus, lms, capsys):
    error = refused(evaluate_argv(lms["wide"], corpus, lms["bpe_lm"]), capsys)
    assert "does not fit this model" in error and BPE_BASE in error
    assert "128 subword tokens" in error and "128 char tokens" in error


def write_arpa_text(path: Path, unigrams: list[str], bigrams: list[tuple[str, str]]) -> str:
    """A well-formed ARPA file (counts agree) over any symbols, as a hand-made or another tool's LM would be."""
    lines = ["\\data\\", f"ngram 1={len(unigrams) + 3}", f"ngram 2={len(bigrams)}", "", "\\1-grams:"]
    lines += ["-1.000000\t<s>\t-0.300000", "-1.000000\t</s>", "-99.000000\t<unk>"]
    lines += [f"-1.500000\t{symbol}\t-0.300000" for symbol in unigrams]
    lines += ["", "\\2-grams:", *(f"-0.500000\t{a} {b}" for a, b in bigrams), "", "\\end\\", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return str(path)


def test_a_word_level_arpa_is_refused(tmp_path, corpus, capsys):
    words = sorted({word for sentence in SENTENCES for word in sentence.split()})
    lm = write_arpa_text(tmp_path / "words.arpa", words, [("<s>", "the"), ("the", "cat"), ("cat", "</s>")])
    error = refused(evaluate_argv(CHAR_BASE, corpus, lm), capsys)
    assert "does not fit this model" in error and "word-level LM" in error and "train-lm" in error


def test_a_character_arpa_in_plain_letters_is_refused(tmp_path, corpus, capsys):
    # NeMo would read 'e' as token 1 ("'") and 'a' as <unk>: a silently wrong LM, not a crash
    letters = [chr(code) for code in range(ord("a"), ord("z") + 1)]
    lm = write_arpa_text(tmp_path / "letters.arpa", letters, [("<s>", "t"), ("t", "h"), ("h", "e")])
    error = refused(["transcribe", "--model", CHAR_BASE, "--manifest", corpus, "--lm", lm], capsys)
    assert "are not this model's token symbols" in error and "chr(i + 100)" in error


def bpe_pieces() -> list[str]:
    from asr_transfer.inference.model import load_model
    from asr_transfer.lm.train import model_vocabulary

    return [piece for piece in model_vocabulary(load_model(BPE_BASE, "cpu"))[1] if piece != "<unk>"]


def test_an_arpa_over_raw_sentencepiece_pieces_is_refused(tmp_path, corpus, capsys):
    pieces = bpe_pieces()
    lm = write_arpa_text(tmp_path / "pieces.arpa", pieces, [("<s>", pieces[3]), (pieces[3], pieces[1])])
    error = refused(evaluate_argv(BPE_BASE, corpus, lm), capsys)
    assert "are words or subword pieces" in error and "raw SentencePiece pieces" in error


def test_an_arpa_over_the_single_character_pieces_is_refused(tmp_path, corpus, capsys):
    # every symbol is one character, so NeMo's loader would take each for a token id (ord - 100)
    pieces = [piece for piece in bpe_pieces() if len(piece) == 1]
    lm = write_arpa_text(tmp_path / "chars.arpa", pieces, [("<s>", pieces[0]), (pieces[0], pieces[1])])
    params = tmp_path / "params.json"
    error = refused(["tune-lm", "--model", BPE_BASE, "--lm", lm, "--manifest", corpus, "--out", str(params)], capsys)
    assert "does not fit this model" in error and "and the model has 128 tokens" in error and not params.exists()


def damaged(source: str, path: Path, change) -> str:
    path.write_text(change(Path(source).read_text(encoding="utf-8")), encoding="utf-8")
    return str(path)


def without_a_context(text: str) -> str:
    """The LM less one bigram that is the context of a trigram, with the header count lowered to match: every
    cheap check passes, and NeMo's loader finds a trigram whose context is missing."""
    lines = text.split("\n")
    bigrams = lines.index("\\2-grams:")
    trigram = next(line for line in lines[lines.index("\\3-grams:") + 1 :] if line and "<s>" not in line)
    context = " ".join(trigram.split("\t")[1].split(" ")[:2])
    lines = [line for line in lines if line.split("\t")[1:2] != [context]]
    assert len(lines) == len(text.split("\n")) - 1 and bigrams
    count = next(number for number, line in enumerate(lines) if line.startswith("ngram 2="))
    lines[count] = f"ngram 2={int(lines[count].split('=')[1]) - 1}"
    return "\n".join(lines)


CORRUPTIONS = {
    "truncated": (lambda text: text[: len(text) // 2], "cut short"),
    "wrong count": (lambda text: text.replace("ngram 2=", "ngram 2=1", 1), "its header says ngram 2="),
    "text before the header": (lambda text: "# built by hand\n" + text, "does not begin with \\data\\"),
    "missing context": (without_a_context, "NeMo's ARPA loader cannot read"),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_a_damaged_arpa_is_refused(tmp_path, corpus, lms, capsys, corruption):
    change, expected = CORRUPTIONS[corruption]
    lm = damaged(lms["base_lm"], tmp_path / "damaged.arpa", change)
    command = "transcribe" if corruption == "missing context" else "evaluate"
    error = refused([command, "--model", CHAR_BASE, "--manifest", corpus, "--lm", lm], capsys)
    assert expected in error and lm in error and "rebuild it with asr-transfer train-lm" in error
