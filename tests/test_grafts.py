"""The NeMo layouts that asr_transfer.training.grafts relies on, pinned against the installed NeMo: a
NeMo upgrade that reorders a batch or changes what a module returns fails here, not silently in training."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import soundfile
import torch
from conftest import CONF
from nemo_models import tiny_char_model
from omegaconf import OmegaConf

from asr_transfer.fileio import write_manifest
from asr_transfer.training.config import load_config
from asr_transfer.training.data import dataset_config
from asr_transfer.training.grafts import (
    BATCH_FIELDS,
    EARLY_RETURN_CHECK,
    attach_kd,
    batch_audio_lengths,
    batch_transcripts,
    capture_outputs,
    guard_training_step,
)

LABELS = [" ", "a", "b", "c"]
CLIPS = {"abc": 8000, "ba": 12800, "c a": 16000}  # text -> samples at 16 kHz


def tiny_manifest(tmp_path) -> str:
    rows = []
    for number, (text, samples) in enumerate(CLIPS.items()):
        path = tmp_path / f"clip{number}.wav"
        wave = 0.1 * np.sin(np.arange(samples) * (0.05 + 0.01 * number)).astype("float32")
        soundfile.write(path, wave, 16000)
        rows.append({"audio_filepath": str(path), "duration": samples / 16000, "text": text})
    write_manifest(tmp_path / "train.json", rows)
    return str(tmp_path / "train.json")


@pytest.mark.parametrize("lhotse", [False, True], ids=["manifest", "lhotse"])
def test_nemo_batches_and_modules_have_the_layout_the_grafts_read(tmp_path, lhotse):
    torch.manual_seed(0)
    model = tiny_char_model(LABELS)
    data = OmegaConf.merge(
        load_config(str(CONF / "tiny_quartznet_char.yaml"), ["vocab.dir=unused"]).data,
        {"batch_size": 3, "num_workers": 0, "speed_perturb": False, "min_duration": 0.1, "max_duration": 20.0,
         "bucketing": lhotse, "batch_duration": 10.0, "num_buckets": 1},
    )  # fmt: skip
    model.setup_training_data(dataset_config(model, tiny_manifest(tmp_path), data, train=True))
    batch = next(iter(model._train_dl))

    # The batch: (audio B x S, audio_lengths B, tokens B x U, token_lengths B), in that order.
    assert len(batch) == len(BATCH_FIELDS) == 4
    audio, audio_lengths = batch[0], batch_audio_lengths(batch)
    tokens, token_lengths = batch_transcripts(batch)
    assert audio.dtype == torch.float32 and audio.dim() == 2 and audio.shape[1] == int(audio_lengths.max())
    assert sorted(audio_lengths.tolist()) == sorted(CLIPS.values())
    texts = [
        "".join(LABELS[i] for i in row[:length].tolist()) for row, length in zip(tokens, token_lengths, strict=True)
    ]
    assert sorted(texts) == sorted(CLIPS)  # each utterance's ids spell its transcript
    for samples, text in zip(audio_lengths.tolist(), texts, strict=True):
        assert CLIPS[text] == samples  # the audio lengths and the tokens are of the same utterances

    # The modules the hooks wrap: preprocessor -> (features, lengths), encoder -> (encoded, lengths),
    # decoder -> B x T x V log-probabilities.
    features, feature_lengths = model.preprocessor(input_signal=audio, length=audio_lengths)
    assert features.shape[:2] == (3, 64) and feature_lengths.shape == (3,)
    encoded, encoded_lengths = model.encoder(audio_signal=features, length=feature_lengths)
    log_probs = model.decoder(encoder_output=encoded)
    assert log_probs.shape == (3, encoded.shape[-1], len(LABELS) + 1) and encoded_lengths.shape == (3,)

    # Every graft on one training step: the KD hooks see the preprocessor's output and the loss's
    # log_probs keyword (else no train_kd is logged), the capture hooks see both outputs.
    model.set_trainer(pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False, accelerator="cpu"))
    model._optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    logged = {}
    model.log = lambda name, value, **kwargs: logged.__setitem__(name, value)
    teacher = tiny_char_model(LABELS).eval()  # same vocabulary, other weights
    attach_kd(model, teacher, temperature=2.0, weight=0.5)
    guard_training_step(model)
    store: dict = {}
    handles = capture_outputs(model, store)
    model.train()
    output = model.training_step(batch, 0)
    loss = output["loss"] if isinstance(output, dict) else output
    assert torch.isfinite(loss) and "train_kd" in logged and float(logged["train_kd"]) >= 0
    assert store["log_probs"].shape[0] == 3 and len(store["encoder"]) == 2
    for handle in handles:
        handle.remove()


def test_nemo_checkpoint_callback_still_has_the_rank_local_check_the_ddp_graft_replaces():
    """rank_zero_decides_best_checkpoint broadcasts rank 0's answer to the test NeMo makes on each rank; a
    NeMo that moves or fixes that test fails here (tests/test_shar.py's DDP test proves the graft works)."""
    import inspect

    from nemo.utils.callbacks.nemo_model_checkpoint import NeMoModelCheckpoint

    source = inspect.getsource(NeMoModelCheckpoint.on_save_checkpoint)
    early, save = source.index(EARLY_RETURN_CHECK), source.index("pl_module.save_to(")
    assert early < source.index("torch.distributed.barrier()", early) < save
