"""Tiny NeMo CTC models built from config in tests (random weights, no download)."""

from __future__ import annotations

from omegaconf import OmegaConf

PREPROCESSOR = {
    "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
    "sample_rate": 16000,
    "features": 64,
    "window_size": 0.025,
    "window_stride": 0.01,
    "normalize": "per_feature",
}


def _encoder(filters: int = 32) -> dict:
    block = {
        "filters": filters,
        "repeat": 1,
        "kernel": [11],
        "stride": [2],
        "dilation": [1],
        "dropout": 0.0,
        "residual": False,
        "separable": True,
    }
    return {
        "_target_": "nemo.collections.asr.modules.ConvASREncoder",
        "feat_in": 64,
        "activation": "relu",
        "conv_mask": True,
        "jasper": [block],
    }


def tiny_bpe_model(tokenizer_dir: str):
    from nemo.collections.asr.models import EncDecCTCModelBPE

    cfg = {
        "sample_rate": 16000,
        "tokenizer": {"dir": tokenizer_dir, "type": "bpe"},
        "preprocessor": PREPROCESSOR,
        "encoder": _encoder(),
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": 32,
            "num_classes": -1,
            "vocabulary": [],
        },
    }
    return EncDecCTCModelBPE(cfg=OmegaConf.create(cfg))


def tiny_char_model(labels: list[str]):
    from nemo.collections.asr.models import EncDecCTCModel

    cfg = {
        "sample_rate": 16000,
        "labels": labels,
        "preprocessor": PREPROCESSOR,
        "encoder": _encoder(),
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": 32,
            "num_classes": len(labels),
            "vocabulary": labels,
        },
    }
    return EncDecCTCModel(cfg=OmegaConf.create(cfg))
