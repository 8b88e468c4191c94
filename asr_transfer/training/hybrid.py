"""A base ``.nemo`` restored as a plain CTC model, hybrid RNNT/TDT-CTC models included.

In: the path of a ``.nemo`` and how the user named it (``init.nemo=``, ``init.pretrained=NAME ->``). Out:
an ``EncDecCTCModel`` or ``EncDecCTCModelBPE``. A CTC archive is restored as it is. A hybrid archive
(``EncDecHybridRNNTCTCModel``/``...BPEModel``, the TDT variants included: NeMo's same classes with a TDT
loss) keeps its preprocessor, encoder, tokenizer and CTC decoder (``aux_ctc``) and drops the transducer
decoder and joint: it is built once as the CTC class from the archive's own config and weights, the
``ctc_decoder.*`` weights loaded as ``decoder.*`` with NeMo's strict key check. What fine-tuning saves
from it is a plain CTC ``.nemo`` that stock NeMo restores. A transducer-only archive (no CTC head) is
one :class:`~asr_transfer.errors.InputError`.

NeMo's own converter (``examples/asr/asr_hybrid_transducer_ctc/helpers/convert_nemo_asr_hybrid_to_ctc.py``,
not in the pip wheel) restores the hybrid and then the CTC model with ``strict=False``: two models in
memory, and a weight that fails to load goes unnoticed. Here the hybrid is never built.
"""

from __future__ import annotations

import os
import sys

from omegaconf import OmegaConf

from asr_transfer.errors import InputError

# Sections of a hybrid config that belong to the transducer half (or the CTC head moved out of aux_ctc).
TRANSDUCER_SECTIONS = ("aux_ctc", "joint", "loss", "decoding", "model_defaults", "compute_eval_loss")


def is_hybrid(config: dict) -> bool:
    """True for a hybrid RNNT/TDT-CTC model's config: NeMo's hybrids keep the CTC head under ``aux_ctc``."""
    return isinstance(config.get("aux_ctc"), dict) and bool(config["aux_ctc"].get("decoder"))


def is_transducer_only(config: dict) -> bool:
    """True for a transducer (RNNT/TDT) model without a CTC head, which cannot be a CTC base."""
    decoder_target = str((config.get("decoder") or {}).get("_target_", ""))
    return not is_hybrid(config) and ("RNNT" in decoder_target or "joint" in config)


def ctc_config(config: dict) -> dict:
    """The CTC model config of a hybrid's config: the ``aux_ctc`` decoder becomes ``decoder``, its CTC loss
    reduction ``ctc_reduction`` (and ``use_cer``); the transducer sections are dropped, and so is the CTC
    head's decoding (NeMo's hybrid configs default it to beam search): the CTC class's greedy default applies."""
    # Resolve interpolations first: dropped sections (model_defaults) may be what they point at.
    resolved = OmegaConf.to_container(OmegaConf.create(config), resolve=True)
    aux = resolved["aux_ctc"]
    cfg = {key: value for key, value in resolved.items() if key not in TRANSDUCER_SECTIONS}
    cfg["decoder"] = aux["decoder"]
    cfg["ctc_reduction"] = aux.get("ctc_reduction", "mean_batch")
    if "use_cer" in aux:  # the CTC head's WER/CER choice, which EncDecCTCModel reads at the top level
        cfg["use_cer"] = aux["use_cer"]
    cfg.pop("nemo_version", None)
    bpe = bool(cfg.get("tokenizer"))
    if bpe:
        cfg.pop("labels", None)
    cfg["target"] = (
        "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE"
        if bpe
        else "nemo.collections.asr.models.ctc_models.EncDecCTCModel"
    )
    return cfg


def _hybrid_connector():
    """A NeMo save/restore connector that loads a hybrid's weights into the CTC model: ``ctc_decoder.*`` as
    ``decoder.*``, the transducer's ``decoder.*`` and ``joint.*`` left out; the load stays strict."""
    from nemo.core.connectors.save_restore_connector import SaveRestoreConnector

    class HybridToCTC(SaveRestoreConnector):
        def modify_state_dict(self, conf, state_dict):
            state_dict = super().modify_state_dict(conf, state_dict)
            kept = {}
            for key, value in state_dict.items():
                if key.startswith("ctc_decoder."):
                    kept["decoder." + key.removeprefix("ctc_decoder.")] = value
                elif not key.startswith(("decoder.", "joint.")):
                    kept[key] = value
            return kept

    return HybridToCTC()


def restore_hybrid_as_ctc(path: str | os.PathLike, named: str, config: dict, map_location: str | None = None):
    """The hybrid archive ``path`` (whose model config is ``config``) as a CTC model with its encoder, CTC
    decoder and tokenizer (or labels); a model NeMo cannot build or load is one :class:`InputError`."""
    from nemo.collections.asr.models import EncDecCTCModel, EncDecCTCModelBPE
    from nemo.core.connectors.save_restore_connector import SaveRestoreConnector

    from asr_transfer.nemofile import cannot_restore

    cfg = ctc_config(config)
    model_class = EncDecCTCModelBPE if cfg.get("tokenizer") else EncDecCTCModel
    try:
        model = model_class.restore_from(
            str(path),
            override_config_path=OmegaConf.create(cfg),
            map_location=map_location,
            strict=True,
            save_restore_connector=_hybrid_connector(),
        )
    except Exception as error:  # NeMo failing on the user's file; the cause is its first message line
        cause = (str(error).strip().splitlines() or [""])[0]
        raise cannot_restore(path, named, config, f"{type(error).__name__}: {cause}") from error
    finally:
        # restore_from installs its connector on the class too; later restores of the class get NeMo's own.
        model_class.update_save_restore_connector(SaveRestoreConnector())
    model._save_restore_connector = SaveRestoreConnector()
    print(
        f"{named}{'' if named.endswith('=') else ' '}{path} is a hybrid transducer-CTC model ({config.get('target')}):"
        f" continuing as {model_class.__name__} with its encoder and CTC decoder; the transducer decoder and "
        "joint are dropped",
        file=sys.stderr,
    )
    return model


def restore_as_ctc(path: str | os.PathLike, named: str, map_location: str | None = None):
    """A base ``.nemo`` as a CTC model: a CTC archive as NeMo restores it, a hybrid through
    :func:`restore_hybrid_as_ctc`; a transducer-only archive, or one NeMo cannot build, is an :class:`InputError`."""
    from asr_transfer.nemofile import check_buildable, restore_model

    config = check_buildable(path, named)
    if is_hybrid(config):
        return restore_hybrid_as_ctc(path, named, config, map_location)
    if is_transducer_only(config):
        where = f"{named}{path}" if named.endswith("=") else f"{named} {path}"
        raise InputError(
            f"{where} is a transducer model ({config.get('target')}) without a CTC decoder, so it cannot be a "
            "CTC base; give a CTC model or a hybrid transducer-CTC model (`asr-transfer bases` lists some)"
        )
    return restore_model(path, named, map_location=map_location)
