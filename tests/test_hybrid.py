"""Hybrid RNNT/TDT-CTC models as bases: a tiny hybrid built from NeMo's own classes (its config modelled on
NeMo's fastconformer_hybrid_transducer_ctc_bpe.yaml, scaled down) continues as a plain CTC model with its
encoder and CTC head, fine-tunes to a new SentencePiece vocabulary, and exports a .nemo stock NeMo restores."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

from asr_transfer.errors import InputError
from asr_transfer.fileio import write_manifest
from asr_transfer.layout import best_nemo
from asr_transfer.tokenizers.train import train_tokenizer
from asr_transfer.training.config import load_config
from asr_transfer.training.finetune import finetune
from asr_transfer.training.hybrid import restore_as_ctc
from tests.conftest import CONF

PREPROCESSOR = {
    "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
    "sample_rate": 16000,
    "normalize": "per_feature",
    "window_size": 0.025,
    "window_stride": 0.01,
    "window": "hann",
    "features": 80,
    "n_fft": 512,
    "frame_splicing": 1,
    "dither": 0.00001,
    "pad_to": 0,
}

ENCODER = {
    "_target_": "nemo.collections.asr.modules.ConformerEncoder",
    "feat_in": 80,
    "feat_out": -1,
    "n_layers": 2,
    "d_model": 32,
    "subsampling": "dw_striding",
    "subsampling_factor": 4,
    "subsampling_conv_channels": 16,
    "ff_expansion_factor": 2,
    "self_attention_model": "rel_pos",
    "n_heads": 2,
    "att_context_size": [-1, -1],
    "xscaling": True,
    "pos_emb_max_len": 5000,
    "conv_kernel_size": 9,
    "conv_norm_type": "batch_norm",
    "dropout": 0.0,
    "dropout_pre_encoder": 0.0,
    "dropout_emb": 0.0,
    "dropout_att": 0.0,
}


def hybrid_config(tokenizer_dir: str) -> dict:
    """NeMo's FastConformer hybrid transducer-CTC BPE config, 2 layers of width 32, interpolations kept."""
    return {
        "sample_rate": 16000,
        "compute_eval_loss": False,
        "model_defaults": {"enc_hidden": "${encoder.d_model}", "pred_hidden": 32, "joint_hidden": 32},
        "tokenizer": {"dir": tokenizer_dir, "type": "bpe"},
        "preprocessor": PREPROCESSOR,
        "encoder": ENCODER,
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder",
            "normalization_mode": None,
            "random_state_sampling": False,
            "blank_as_pad": True,
            "prednet": {"pred_hidden": "${model_defaults.pred_hidden}", "pred_rnn_layers": 1, "dropout": 0.0},
        },
        "joint": {
            "_target_": "nemo.collections.asr.modules.RNNTJoint",
            "log_softmax": None,
            "preserve_memory": False,
            "fuse_loss_wer": True,
            "fused_batch_size": 4,
            "jointnet": {"joint_hidden": "${model_defaults.joint_hidden}", "activation": "relu", "dropout": 0.0},
        },
        "decoding": {"strategy": "greedy_batch", "greedy": {"max_symbols": 10}},
        "aux_ctc": {
            "ctc_loss_weight": 0.3,
            "use_cer": False,
            "ctc_reduction": "mean_batch",
            "decoder": {
                "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
                "feat_in": None,
                "num_classes": -1,
                "vocabulary": [],
            },
            "decoding": {"strategy": "greedy_batch"},  # NeMo's file says beam; 3.0 needs many more beam keys
        },
        "loss": {"loss_name": "default"},
    }


@pytest.fixture(scope="module")
def tiny_hybrid(tmp_path_factory):
    """A tiny English hybrid RNNT-CTC BPE model with random weights, saved as .nemo: (path, model)."""
    from nemo.collections.asr.models import EncDecHybridRNNTCTCBPEModel

    tmp = tmp_path_factory.mktemp("hybrid")
    text = tmp / "en.json"
    sentences = ["the quick brown fox jumps over the lazy dog", "a hybrid model keeps its ctc head"]
    write_manifest(text, [{"audio_filepath": "x.wav", "duration": 1.0, "text": s} for s in sentences * 10])
    tokenizer = train_tokenizer([str(text)], "en", "bpe", tmp / "tok", vocab_size=32)
    model = EncDecHybridRNNTCTCBPEModel(cfg=OmegaConf.create(hybrid_config(str(tokenizer))))
    path = tmp / "tiny_hybrid.nemo"
    model.save_to(str(path))
    return str(path), model.eval()


def test_hybrid_restores_as_ctc_with_its_encoder_and_ctc_head(tiny_hybrid):
    from nemo.collections.asr.models import ASRModel, EncDecCTCModelBPE

    path, hybrid = tiny_hybrid
    model = restore_as_ctc(path, "init.nemo=", map_location="cpu").eval()
    assert type(model) is EncDecCTCModelBPE and not hasattr(model, "joint")
    for name, weight in hybrid.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[name], weight), name
    for name, weight in hybrid.ctc_decoder.state_dict().items():
        assert torch.equal(model.decoder.state_dict()[name], weight), name
    assert model.tokenizer.vocab_size == hybrid.tokenizer.vocab_size
    audio = torch.randn(1, 16000)
    length = torch.tensor([16000])
    with torch.no_grad():
        encoded, encoded_length = hybrid(input_signal=audio, input_signal_length=length)
        expected = hybrid.ctc_decoder(encoder_output=encoded)
        log_probs, _, _ = model(input_signal=audio, input_signal_length=length)
    assert torch.allclose(log_probs, expected, atol=1e-5), "the CTC model computes what the hybrid's CTC head did"
    # A hybrid archive read by stock NeMo is still a hybrid: the conversion is ours, not a side effect.
    assert type(ASRModel.restore_from(path, map_location="cpu")).__name__ == "EncDecHybridRNNTCTCBPEModel"


def test_character_hybrid_continues_as_character_ctc(tmp_path):
    """EncDecHybridRNNTCTCModel (labels, no tokenizer) -> EncDecCTCModel with the CTC head's labels."""
    from nemo.collections.asr.models import EncDecCTCModel, EncDecHybridRNNTCTCModel

    labels = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]
    cfg = hybrid_config("unused")
    cfg.pop("tokenizer")
    cfg["labels"] = labels
    cfg["joint"].update({"vocabulary": labels, "num_classes": len(labels)})
    cfg["decoder"]["vocab_size"] = len(labels)
    cfg["aux_ctc"]["decoder"].update({"vocabulary": labels, "num_classes": len(labels)})
    path = tmp_path / "char_hybrid.nemo"
    EncDecHybridRNNTCTCModel(cfg=OmegaConf.create(cfg)).save_to(str(path))
    model = restore_as_ctc(path, "init.nemo=")
    assert type(model) is EncDecCTCModel and list(model.decoder.vocabulary) == labels


def test_transducer_only_model_is_refused(tiny_hybrid, tmp_path):
    from nemo.collections.asr.models import EncDecRNNTBPEModel

    _, hybrid = tiny_hybrid
    cfg = OmegaConf.to_container(hybrid.cfg)
    cfg.pop("aux_ctc")
    cfg["tokenizer"]["dir"] = str(hybrid.cfg.tokenizer.dir)
    path = tmp_path / "rnnt.nemo"
    EncDecRNNTBPEModel(cfg=OmegaConf.create(cfg)).save_to(str(path))
    with pytest.raises(InputError, match=r"is a transducer model .* without a CTC decoder"):
        restore_as_ctc(path, "init.nemo=")


def test_finetune_from_hybrid_exports_plain_ctc(tiny_hybrid, tmp_path, german):
    """init.nemo=hybrid, BPE -> BPE vocabulary swap, 2 CPU steps, export, stock NeMo restore and transcribe."""
    from nemo.collections.asr.models import ASRModel, EncDecCTCModelBPE

    from asr_transfer.inference.export import export

    path, _ = tiny_hybrid
    cfg = load_config(
        str(CONF / "tiny_fastconformer_bpe.yaml"),
        [
            f"init.nemo={path}",
            f"vocab.dir={german['bpe']}",
            f"data.train_manifest={german['train']}",
            f"data.dev_manifest={german['dev']}",
            f"exp_manager.exp_dir={tmp_path / 'exp'}",
            "trainer.enable_progress_bar=false",
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "data.batch_size=4",
            "data.check_lengths=false",
        ],
    )
    log_dir = finetune(cfg)
    report = json.loads((log_dir / "model_report.json").read_text())
    assert report["shared_tokens_kept"] >= 1
    out = tmp_path / "de_from_hybrid.nemo"
    export(str(log_dir), str(out))
    restored = ASRModel.restore_from(str(out), map_location="cpu")
    assert type(restored) is EncDecCTCModelBPE and restored.tokenizer.vocab_size == 48
    hypotheses = restored.transcribe([json.loads(open(german["dev"]).readline())["audio_filepath"]], verbose=False)
    assert len(hypotheses) == 1 and isinstance(hypotheses[0].text, str)
    assert best_nemo(log_dir).is_file()
