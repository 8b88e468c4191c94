"""A ``.nemo`` file checked before NeMo opens it.

In: a path and how the user named it (``init.nemo=``, ``--model``, ``--init_nemo``). Out: nothing when
it is a complete NeMo archive (a tar, gzipped or not, holding ``model_config.yaml``); otherwise an
:class:`InputError` saying what is wrong with it. NeMo itself would fail deep inside ``restore_from``
with a ``tarfile.ReadError`` traceback, after a run folder was already made. :func:`read_config` gives
the archive's model config without building the model (e.g. its vocabulary kind, for checks);
:func:`restore_model` restores it, and a model NeMo cannot build is one :class:`InputError` naming the
key or class at fault and the NeMo version that wrote the file (NeMo itself falls back to the abstract
``ASRModel`` and reports only "Can't instantiate abstract class"). Hybrid RNNT/TDT-CTC archives are
recognized by their ``aux_ctc`` section: :func:`ctc_decoder_config` gives the CTC head's decoder config,
the one a character check must read (:mod:`asr_transfer.training.hybrid` restores them as CTC models).
"""

from __future__ import annotations

import functools
import os
import tarfile
import zlib

import yaml

from asr_transfer.errors import InputError

CONFIG_MEMBER = "model_config.yaml"


def _where(path: str | os.PathLike, named: str) -> str:
    return f"{named}{path}" if named.endswith("=") else f"{named} {path}"


def check_nemo_file(path: str | os.PathLike, named: str) -> None:
    _config_text(path, named)


def _config_text(path: str | os.PathLike, named: str) -> bytes:
    """The bytes of the archive's ``model_config.yaml``, from one walk over the archive, or the error that
    says why it is no .nemo file. Reading every member header walks the whole archive, so a truncated
    download shows up here."""
    where = _where(path, named)
    if not os.path.isfile(path):
        raise InputError(f"{where} does not exist; check the path")
    try:
        stat = os.stat(path)
        return _cached_config_text(os.path.realpath(path), stat.st_mtime_ns, stat.st_size)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise InputError(
            f"{where} is not a readable .nemo archive ({reason}); it may be truncated or another kind of file: "
            f"download or export it again"
        ) from None
    except LookupError:
        raise InputError(
            f"{where} is an archive without {CONFIG_MEMBER}, so not a NeMo model; give a .nemo file"
        ) from None


@functools.lru_cache(maxsize=8)
def _cached_config_text(path: str, mtime_ns: int, size: int) -> bytes:
    """Keyed by the file's modification time and size, so the checks before a run and the restore in it
    walk a multi-GB archive once, and a rewritten file is read again."""
    with tarfile.open(path, "r:*") as archive:
        config = None
        for member in archive.getmembers():
            if config is None and os.path.basename(member.name) == CONFIG_MEMBER:
                config = member
        if config is None:
            raise LookupError(CONFIG_MEMBER)
        handle = archive.extractfile(config)
        return handle.read() if handle else b""


def read_config(path: str | os.PathLike, named: str) -> dict:
    """The archive's ``model_config.yaml`` as a dict (the archive checked as :func:`check_nemo_file` does)."""
    text = _config_text(path, named)
    try:
        config = yaml.safe_load(text.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        problem = f"{CONFIG_MEMBER} is not valid YAML ({' '.join(str(error).split())})"
        raise InputError(f"{_where(path, named)}: {problem}; export it again") from None
    if not isinstance(config, dict):
        raise InputError(f"{_where(path, named)}: {CONFIG_MEMBER} holds no model config; export it again")
    return config


def vocabulary_kind(config: dict) -> str:
    """``bpe`` for a model with a tokenizer (``EncDecCTCModelBPE``, ``EncDecHybridRNNTCTCBPEModel``), else
    ``char`` (``EncDecCTCModel``, ``EncDecHybridRNNTCTCModel``)."""
    return "bpe" if config.get("tokenizer") else "char"


def ctc_decoder_config(config: dict) -> dict:
    """The config of the decoder a CTC base predicts with: ``decoder``, or a hybrid RNNT/TDT-CTC model's
    CTC head (``aux_ctc.decoder``; its ``decoder`` is the transducer's prediction network)."""
    aux = config.get("aux_ctc")
    if isinstance(aux, dict) and isinstance(aux.get("decoder"), dict):
        return aux["decoder"]
    return config.get("decoder") or {}


TOKENIZER_TYPES = ("bpe", "wpe")  # what NeMo 3.0's ASRBPEMixin builds


def build_problem(config: dict) -> str | None:
    """Why NeMo cannot build a model from ``config`` (a key or class at fault), found without building it."""
    from nemo.collections.asr.models import ASRModel
    from nemo.core.classes.common import _get_allowed_target_class

    target = config.get("target") or config.get("_target_")
    if not target:
        return "its model_config.yaml has no `target` naming the model class"
    try:
        model_class = _get_allowed_target_class(str(target))
    except Exception:  # an unsafe prefix, a moved module or a removed class
        return f"its model_config.yaml names class {target}, which this NeMo does not have"
    if not (isinstance(model_class, type) and issubclass(model_class, ASRModel)):
        return f"its model_config.yaml names {target}, which is not a NeMo speech recognition model class"
    if getattr(model_class, "__abstractmethods__", None):
        return f"its model_config.yaml names class {target}, which is abstract"
    tokenizer = config.get("tokenizer")
    if tokenizer and tokenizer.get("type") not in TOKENIZER_TYPES:
        return (
            f"its tokenizer.type is {tokenizer.get('type')!r}, which this NeMo does not know "
            f"(it builds {' or '.join(TOKENIZER_TYPES)})"
        )
    decoder = ctc_decoder_config(config)
    has_ctc_head = not config.get("joint") or "aux_ctc" in config  # a transducer's labels live elsewhere
    if not tokenizer and has_ctc_head and not decoder.get("vocabulary"):
        where = "only at the top level (labels)" if config.get("labels") else "nowhere"
        key = "aux_ctc.decoder.vocabulary" if "aux_ctc" in config else "decoder.vocabulary"
        return f"it is a character model whose {key} is empty: its labels are {where}"
    return None


def cannot_restore(path, named: str, config: dict, problem: str) -> InputError:
    import nemo

    written_by = f"written by NeMo {config.get('nemo_version', 'of an unrecorded version')}"
    fix = f"export the model again with NeMo {nemo.__version__}, or fix its model_config.yaml"
    where = _where(path, named)
    return InputError(f"{where} cannot be restored by NeMo {nemo.__version__}: {problem} ({written_by}); {fix}")


def check_buildable(path: str | os.PathLike, named: str) -> dict:
    """The archive's config when NeMo can build a model from it (:func:`build_problem`); else one error."""
    config = read_config(path, named)
    problem = build_problem(config)
    if problem:
        raise cannot_restore(path, named, config, problem)
    return config


def restore_model(path: str | os.PathLike, named: str, map_location: str | None = None):
    """``ASRModel.restore_from(path)`` of a checked archive, or one :class:`InputError` saying why not."""
    from nemo.collections.asr.models import ASRModel

    config = check_buildable(path, named)
    try:
        return ASRModel.restore_from(str(path), map_location=map_location)
    except Exception as error:  # NeMo failing on the user's file; the cause is its first message line
        cause = (str(error).strip().splitlines() or [""])[0]
        raise cannot_restore(path, named, config, f"{type(error).__name__}: {cause}") from error
