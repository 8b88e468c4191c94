"""Tokenizer folders: layout, determinism, size errors, and loading by NeMo's own classes."""

from __future__ import annotations

import hashlib

import pytest
import torch

from asr_transfer.cli import main as cli_main
from asr_transfer.fileio import write_manifest
from asr_transfer.tokenizers.train import TokenizerError, read_labels, train_tokenizer
from tests.conftest import read_lines
from tests.nemo_models import tiny_bpe_model, tiny_char_model


def digest(folder):
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def manifests(prepared_de):
    out, _ = prepared_de
    return [str(out / "train.json"), str(out / "dev.json")]


def test_char_vocabulary_is_the_alphabet(tmp_path, manifests):
    folder = train_tokenizer(manifests, "de", "char", tmp_path)
    assert folder == tmp_path / "de" / "char"
    labels = read_labels(folder / "vocab.txt")
    assert labels[0] == " " and labels[1] == "'" and "ß" in labels and len(labels) == 32


def test_cantonese_char_vocabulary_lists_han_seen(tmp_path):
    manifest = tmp_path / "yue.json"
    write_manifest(
        manifest,
        [
            {"audio_filepath": "a.wav", "duration": 1.0, "text": "我哋去shopping"},
            {"audio_filepath": "b.wav", "duration": 1.0, "text": "食飯"},
        ],
    )
    labels = read_labels(train_tokenizer([str(manifest)], "yue", "char", tmp_path) / "vocab.txt")
    assert {"我", "哋", "去", "食", "飯", "s"} <= set(labels) and labels[0] == " "


def test_char_vocabulary_refuses_text_of_another_language(tmp_path):
    manifest = tmp_path / "ru.json"
    write_manifest(manifest, [{"audio_filepath": "a.wav", "duration": 1.0, "text": "привет"}])
    with pytest.raises(TokenizerError, match="outside the de alphabet"):
        train_tokenizer([str(manifest)], "de", "char", tmp_path)


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_sentencepiece_folder_is_deterministic(tmp_path, manifests, kind):
    first = train_tokenizer(manifests, "de", kind, tmp_path / "a", vocab_size=48)
    second = train_tokenizer(manifests, "de", kind, tmp_path / "b", vocab_size=48)
    assert first.name == f"spe_{kind}_v48"
    assert {path.name for path in first.iterdir()} == {"tokenizer.model", "tokenizer.vocab", "vocab.txt"}
    assert digest(first) == digest(second)
    assert not [path for path in first.parent.iterdir() if "tmp" in path.name]


def test_too_large_vocabulary_names_the_largest(tmp_path, manifests, capsys):
    argv = [str(tmp_path), "--manifest", manifests[0], "--lang", "de", "--kind", "bpe", "--vocab-size", "5000"]
    code = cli_main(["train-tokenizer", *argv])
    assert code == 2
    message = capsys.readouterr().err
    assert "the largest vocabulary it can build is" in message
    largest = int(message.split("--vocab-size ")[1].split()[0])
    assert train_tokenizer(manifests[:1], "de", "bpe", tmp_path, vocab_size=largest).is_dir()
    assert not (tmp_path / "de" / "spe_bpe_v5000").exists()


def test_nemo_bpe_model_loads_the_folder(tmp_path, manifests):
    base_dir = train_tokenizer(manifests, "de", "bpe", tmp_path, vocab_size=64)
    target_dir = train_tokenizer(manifests, "de", "unigram", tmp_path, vocab_size=40)
    model = tiny_bpe_model(str(base_dir))
    assert model.tokenizer.vocab_size == 64
    model.change_vocabulary(new_tokenizer_dir=str(target_dir), new_tokenizer_type="bpe")
    assert model.tokenizer.vocab_size == 40
    assert model.decoder.num_classes_with_blank == 41
    text = "die straße ist nass"
    assert model.tokenizer.ids_to_text(model.tokenizer.text_to_ids(text)) == text
    with torch.no_grad():
        log_probs, lengths, _ = model(input_signal=torch.randn(1, 16000), input_signal_length=torch.tensor([16000]))
    assert log_probs.shape[-1] == 41


def test_nemo_char_dataset_reads_the_manifest(tmp_path, prepared_de):
    from nemo.collections.asr.data.audio_to_text import AudioToCharDataset

    out, _ = prepared_de
    labels = read_labels(train_tokenizer([str(out / "train.json")], "de", "char", tmp_path) / "vocab.txt")
    dataset = AudioToCharDataset(
        str(out / "dev.json"), labels=labels, sample_rate=16000, parser="base", normalize=False
    )
    entries = read_lines(out / "dev.json")
    assert len(dataset) == len(entries)
    audio, audio_length, tokens, token_length = dataset[0]
    assert audio_length.item() == pytest.approx(entries[0]["duration"] * 16000, abs=2)
    assert "".join(labels[index] for index in tokens.tolist()) == entries[0]["text"]
    model = tiny_char_model(labels)
    with torch.no_grad():
        log_probs, _, _ = model(input_signal=audio[None], input_signal_length=audio_length[None])
    assert log_probs.shape[-1] == len(labels) + 1


def test_sentencepiece_training_log_stays_off_the_terminal_unless_verbose(tmp_path, manifests, capfd, monkeypatch):
    """SentencePiece's trainer writes ~60 lines to file descriptor 2 from C++; quiet, none reach it."""
    monkeypatch.delenv("ASR_TRANSFER_VERBOSE", raising=False)
    train_tokenizer(manifests, "de", "bpe", tmp_path / "quiet", vocab_size=48)
    assert "trainer_interface" not in capfd.readouterr().err
    monkeypatch.setenv("ASR_TRANSFER_VERBOSE", "1")
    train_tokenizer(manifests, "de", "bpe", tmp_path / "verbose", vocab_size=48)
    assert "trainer_interface" in capfd.readouterr().err
