"""ONNX export of a CTC model for deployment outside NeMo: ONNX Runtime and sherpa-onnx.

In: a restored NeMo CTC model (``EncDecCTCModel``, ``EncDecCTCModelBPE``) and an output folder. Out, in
the folder:

- ``model.onnx``: NeMo's own exporter (``model.export``) behind a small frontend: input ``audio_signal``,
  log-mel features B x features x T (float32, the model's preprocessor's before its normalization, one
  frame more than NeMo's valid frames), and ``length`` (B, int64); the frontend drops the last frame and
  normalizes as the preprocessor does (:func:`_add_frontend`); output ``logprobs``, B x T/subsampling x
  (vocabulary + 1), the blank last. NeMo drops ``length`` from convolutional encoders (QuartzNet) whose
  masks it turns off for export; it is added back as an unused input, because sherpa-onnx feeds both.
  The metadata that sherpa-onnx's offline NeMo CTC recognizer reads (``vocab_size``, ``normalize_type``,
  ``subsampling_factor``; with ``model_type``, ``version``, ``model_author``, ``comment`` as in its NeMo
  export guide) and ``feat_dim``, ``sample_rate`` for other runtimes are in the model's
  ``metadata_props``.
- ``tokens.txt``: ``<token> <id>`` per line, the blank ``<blk>`` last; a space token is written ``▁``,
  which sherpa-onnx prints as a space.

:func:`ort_transcribe` decodes with ONNX Runtime (features from the model's NeMo preprocessor,
:func:`nemo_features`, one utterance at a time, greedy CTC); :func:`sherpa_transcribe` with sherpa-onnx,
which computes its own features from the waveform (Kaldi framing: frames centred on hop/2 + i * hop).
Those are NeMo's features only for a preprocessor with ``exact_pad: true`` (centred on the same samples)
and NeMo's other defaults; :func:`sherpa_frontend_problems` lists the settings that differ.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np

from asr_transfer.errors import UserError
from asr_transfer.fileio import atomic_path
from asr_transfer.manifests.audio import TARGET_RATE, model_sample_rate

MODEL_FILE = "model.onnx"
TOKENS_FILE = "tokens.txt"
BLANK = "<blk>"
# sherpa-onnx's Kaldi framing computes round(n / hop) frames of n samples, NeMo's exact_pad framing
# n // hop - 1 valid ones centred on the same samples: the frontend drops the last frame, which leaves
# NeMo's count, or one more for half of all lengths (the graph cannot tell which: it sees no samples)
DROPPED_FRAMES = 1
SPACE = "\u2581"  # SentencePiece's word boundary; sherpa-onnx's symbol table turns it into a space

# What sherpa-onnx 2.0.1's NeMo CTC frontend computes (offline-recognizer-ctc-impl.h: kaldi-native-fbank,
# librosa-style slaney mel banks from 0 Hz to Nyquist, a Hann window, no DC removal, 25 ms frames every
# 10 ms centred on hop/2 + i * hop, pre-emphasis 0.97 within each frame, where the window's first sample
# is 0; read back through a probe model: log(energy + 2**-24) when normalize_type is per_feature). These
# are NeMo's exact_pad features but for the first frame (Kaldi reflects the signal at its start, NeMo pads
# zeros) and the frame count (DROPPED_FRAMES). The preprocessor settings it reproduces, as (config key,
# NeMo's default when the key is absent, accepted values):
SHERPA_FRONTEND = (
    ("_target_", None, ("nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",)),
    ("exact_pad", False, (True,)),
    ("window_size", 0.02, (0.025,)),
    ("window_stride", 0.01, (0.01,)),
    ("window", "hann", ("hann",)),
    ("lowfreq", 0, (0, 0.0)),
    ("highfreq", None, (None,)),
    ("mel_norm", "slaney", ("slaney",)),
    ("preemph", 0.97, (0.97,)),
    ("log", True, (True,)),
    ("log_zero_guard_type", "add", ("add",)),
    ("log_zero_guard_value", 2**-24, (2**-24,)),
    ("mag_power", 2.0, (2.0, 2)),
    ("frame_splicing", 1, (1,)),
    ("normalize", "per_feature", ("per_feature",)),
)


EXACT_PAD_HINT = (
    "; its frames are centred half a hop later than this model's: fine-tune with "
    "+model.preprocessor.exact_pad=true for sherpa-onnx"
)


def sherpa_frontend_problems(preprocessor_cfg) -> list[str]:
    """The model's preprocessor settings that sherpa-onnx's NeMo CTC frontend does not compute (each as
    ``key=value (sherpa-onnx: ...)``); empty when it computes the same kind of features."""
    problems = []
    # Kaldi pads each frame to the next power of two; NeMo's n_fft defaults to the same
    window = round(float(preprocessor_cfg.get("window_size", 0.02)) * int(preprocessor_cfg.get("sample_rate", 16000)))
    n_fft = preprocessor_cfg.get("n_fft")
    if n_fft is not None and n_fft != 2 ** math.ceil(math.log2(window)):
        problems.append(f"preprocessor.n_fft={n_fft} (sherpa-onnx: {2 ** math.ceil(math.log2(window))})")
    for key, default, accepted in SHERPA_FRONTEND:
        value = preprocessor_cfg.get(key, default)
        if value not in accepted:
            hint = EXACT_PAD_HINT if key == "exact_pad" else ""
            problems.append(f"preprocessor.{key}={value} (sherpa-onnx: {accepted[0]}{hint})")
    return problems


def normalize_type(preprocessor_cfg) -> str:
    """sherpa-onnx's ``normalize_type``: ``per_feature`` for a model that normalizes so, else empty.
    Measured with sherpa-onnx 2.0.1 (features read back through a probe model): with ``per_feature`` its
    log-mel features are NeMo's log(energy + 2**-24), with an empty one Kaldi's log(max(energy, float
    epsilon)), so per_feature is written even though the graph normalizes again (which undoes any mean and
    scale per feature, so only sherpa-onnx's choice of frames is left in the result)."""
    return "per_feature" if graph_normalize(preprocessor_cfg) == "per_feature" else ""


def graph_normalize(preprocessor_cfg) -> str:
    """The normalization the exported graph applies to its input, NeMo's: ``per_feature``,
    ``all_features``, or empty for none. Raises UserError for another (fixed means and deviations)."""
    value = preprocessor_cfg.get("normalize", "per_feature")
    if value in ("NA", None, ""):
        return ""
    if value not in ("per_feature", "all_features"):
        raise UserError(
            f"preprocessor.normalize={value} cannot be put into the ONNX graph (per_feature, all_features or NA "
            f"can); export without --onnx"
        )
    return str(value)


def subsampling_factor(model) -> int:
    """Input frames per output frame of the model's encoder, measured on 1600 frames of noise (QuartzNet's
    strides and Conformer's subsampling are configured differently; the output length is one rule)."""
    import torch

    if model.training:
        raise ValueError("subsampling_factor needs a model in eval mode (BatchNorm statistics would move)")
    frames = 1600
    features = int(model.cfg.preprocessor.get("features", 64))
    with torch.inference_mode():
        _, lengths = model.encoder(audio_signal=torch.randn(1, features, frames), length=torch.tensor([frames]))
    return max(1, round(frames / int(lengths[0])))


def token_lines(vocabulary: list[str]) -> list[str]:
    """``tokens.txt`` lines: ``<token> <id>``, the blank (id len(vocabulary)) last. Raises UserError for a
    token holding whitespace other than a lone space, which the ``<token> <id>`` format cannot carry."""
    lines = []
    for index, token in enumerate(vocabulary):
        written = SPACE if token == " " else token
        if not written or any(char.isspace() for char in written):
            raise UserError(
                f"token {index} ({token!r}) of the model's vocabulary holds whitespace, which sherpa-onnx's "
                f"tokens.txt cannot carry; export without --onnx"
            )
        lines.append(f"{written} {index}")
    lines.append(f"{BLANK} {len(vocabulary)}")
    return lines


def _add_length_input(graph) -> None:
    from onnx import TensorProto, helper

    if len(graph.input) > 1:
        return
    batch = graph.input[0].type.tensor_type.shape.dim[0]
    graph.input.append(
        helper.make_tensor_value_info("length", TensorProto.INT64, [batch.dim_param or batch.dim_value or "batch"])
    )


def _rename_input(graph, old: str, new: str) -> None:
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name == old:
                node.input[index] = new


def _add_frontend(graph, normalize: str, opset: int) -> None:
    """Prepend to the exported graph what turns sherpa-onnx's frames into NeMo's: drop the last
    ``DROPPED_FRAMES`` input frames (and as much of ``length``), then normalize as NeMo's preprocessor does
    (``per_feature``: over time, standard deviation with N - 1, + 1e-5; ``all_features``: over all values;
    empty: not at all). sherpa-onnx normalizes over all its frames first; normalizing again undoes its
    mean and scale, so that only NeMo's statistics over NeMo's frames are left. Measured on the tiny
    English base with exact_pad (240 synthetic utterances): 234 transcripts equal the .nemo's, against 221
    with sherpa-onnx's normalization alone, 229 with 2 frames dropped (and blank frames appended to the
    output: sherpa-onnx decodes length / subsampling output frames, one more than the model then writes
    for even lengths). ``opset``: the graph's."""
    from onnx import TensorProto, helper

    def constant(name, values, dtype=TensorProto.INT64):
        return helper.make_node(
            "Constant", [], [name], value=helper.make_tensor(name + "_value", dtype, [len(values)], values)
        )

    def reduce(op, source, target):
        # ReduceSum takes its axes as an input from opset 13, the other Reduce operators from opset 18
        if (op == "ReduceSum" and opset >= 13) or opset >= 18:
            return helper.make_node(op, [source, "fe_axes"], [target], keepdims=1)
        return helper.make_node(op, [source], [target], axes=axes, keepdims=1)

    features, length = graph.input[0].name, graph.input[1].name
    axes = [2] if normalize == "per_feature" else [1, 2]
    nodes = [
        constant("fe_zero", [0]),
        constant("fe_end", [-DROPPED_FRAMES]),
        constant("fe_time", [2]),
        constant("fe_dropped", [DROPPED_FRAMES]),
        helper.make_node("Slice", [features, "fe_zero", "fe_end", "fe_time"], ["fe_frames"]),
        helper.make_node("Sub", [length, "fe_dropped"], ["fe_length"]),
    ]
    inner = "fe_frames"
    if normalize in ("per_feature", "all_features"):
        nodes += [
            constant("fe_axes", axes),
            constant("fe_guard", [1e-5], TensorProto.FLOAT),
            constant("fe_one_float", [1.0], TensorProto.FLOAT),
            reduce("ReduceMean", "fe_frames", "fe_mean"),
            helper.make_node("Sub", ["fe_frames", "fe_mean"], ["fe_centred"]),
            helper.make_node("Mul", ["fe_centred", "fe_centred"], ["fe_square"]),
            reduce("ReduceSum", "fe_square", "fe_sum"),
            # the count of values each mean is over, as a float: the frames (times the features for all_features)
            helper.make_node("Shape", ["fe_frames"], ["fe_shape"]),
            helper.make_node("Gather", ["fe_shape", "fe_axes"], ["fe_sizes"]),
            helper.make_node("ReduceProd", ["fe_sizes"], ["fe_count_int"], keepdims=1),
            helper.make_node("Cast", ["fe_count_int"], ["fe_count"], to=TensorProto.FLOAT),
            helper.make_node("Sub", ["fe_count", "fe_one_float"], ["fe_dof"]),
            helper.make_node("Div", ["fe_sum", "fe_dof"], ["fe_var"]),
            helper.make_node("Sqrt", ["fe_var"], ["fe_std"]),
            helper.make_node("Add", ["fe_std", "fe_guard"], ["fe_scale"]),
            helper.make_node("Div", ["fe_centred", "fe_scale"], ["fe_normalized"]),
        ]
        inner = "fe_normalized"
    _rename_input(graph, features, inner)
    _rename_input(graph, length, "fe_length")
    for node in reversed(nodes):
        graph.node.insert(0, node)


def export_onnx(model, out_dir: str | os.PathLike, comment: str = "") -> dict:
    """Write ``model.onnx`` and ``tokens.txt`` of a CTC model into ``out_dir`` (module docstring).

    ``model`` is changed by NeMo's exporter (masked convolutions off, gradients off): save it before, or
    restore it again after. Returns the metadata written, with ``sherpa_frontend_problems`` (a list;
    non-empty means sherpa-onnx will compute other features than the model was trained on).
    Raises UserError for a model that is no CTC model."""
    import onnx
    from nemo.collections.asr.models import EncDecCTCModel

    if not isinstance(model, EncDecCTCModel):
        raise UserError(
            f"{type(model).__name__} is no CTC model (EncDecCTCModel, EncDecCTCModelBPE); --onnx exports CTC "
            f"models only"
        )
    # eval first: measuring the subsampling runs the encoder, which in training mode would move the
    # BatchNorm statistics toward random noise
    model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    preprocessor = model.cfg.preprocessor
    vocabulary = list(model.decoder.vocabulary)
    lines = token_lines(vocabulary)
    metadata = {
        "vocab_size": str(len(vocabulary) + 1),
        "normalize_type": normalize_type(preprocessor),
        "subsampling_factor": str(subsampling_factor(model)),
        "model_type": type(model).__name__,
        "version": "1",
        "model_author": "nemo",
        "comment": comment or "exported by asr-transfer export --onnx",
        "feat_dim": str(int(preprocessor.get("features", 64))),
        "sample_rate": str(model_sample_rate(model)),
    }
    with atomic_path(out / MODEL_FILE) as tmp:
        exported = tmp + ".onnx"  # NeMo picks the format from the extension
        try:
            with warnings.catch_warnings():
                # NeMo gives torch.onnx its dynamic axes unnamed; torch names them and warns once per input
                warnings.filterwarnings("ignore", message="No names were found for specified dynamic axes")
                model.export(exported)
            proto = onnx.load(exported)
        finally:
            if os.path.exists(exported):
                os.remove(exported)
        _add_length_input(proto.graph)
        opset = next((entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")), 17)
        _add_frontend(proto.graph, graph_normalize(preprocessor), opset)
        del proto.metadata_props[:]
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, tmp)
    with atomic_path(out / TOKENS_FILE) as tmp:
        Path(tmp).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return {**metadata, "sherpa_frontend_problems": sherpa_frontend_problems(preprocessor)}


def read_tokens(out_dir: str | os.PathLike) -> list[str]:
    """The vocabulary of an export's ``tokens.txt`` (blank left out), spaces as written by the model."""
    tokens = []
    for line in (Path(out_dir) / TOKENS_FILE).read_text(encoding="utf-8").splitlines():
        token, _ = line.rsplit(" ", 1)
        if token != BLANK:
            tokens.append(" " if token == SPACE else token)
    return tokens


def greedy_text(log_probs: np.ndarray, vocabulary: list[str]) -> str:
    """Greedy CTC: the best token per frame (T x (V+1) scores, blank = V), repeats merged, blanks dropped;
    SentencePiece's ``▁`` becomes a space."""
    blank = len(vocabulary)
    best = log_probs.argmax(axis=-1)
    changed = np.concatenate([[True], best[1:] != best[:-1]]) if len(best) else np.zeros(0, dtype=bool)
    kept = [int(token) for token in best[changed] if token != blank]
    text = "".join(vocabulary[token] for token in kept).replace(SPACE, " ")
    return " ".join(text.split())


class OnnxRuntimeCtc:
    """An exported folder run by ONNX Runtime on CPU: ``transcribe(features)`` for 1 x features x T
    log-mel arrays before normalization, T = the valid frames plus one, which the graph drops
    (:func:`nemo_features`: NeMo's preprocessor pads to a multiple of 16 frames, which the exported graph,
    without its convolution masks, would read as speech)."""

    def __init__(self, out_dir: str | os.PathLike, threads: int = 1):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(Path(out_dir) / MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )
        self.vocabulary = read_tokens(out_dir)
        self.inputs = [item.name for item in self.session.get_inputs()]

    def log_probs(self, features: np.ndarray) -> np.ndarray:
        feeds = {self.inputs[0]: features.astype(np.float32)}
        if len(self.inputs) > 1:
            feeds[self.inputs[1]] = np.array([features.shape[-1]], dtype=np.int64)
        return self.session.run(None, feeds)[0][0]

    def transcribe(self, features: np.ndarray) -> str:
        return greedy_text(self.log_probs(features), self.vocabulary)


def nemo_features(model, samples: np.ndarray) -> np.ndarray:
    """What ``model.onnx`` takes for one utterance (float32 samples at the model's rate): 1 x features x
    (T + 1) log-mel features from the model's own preprocessor as NeMo's transcribe computes them (no
    dither, no padding) but before normalization, which the graph does: its T valid frames and one more
    (zeros), which the graph drops as it drops the one frame Kaldi framing computes beyond NeMo's."""
    import torch

    featurizer = model.preprocessor.featurizer
    pad_to, normalize = featurizer.pad_to, featurizer.normalize
    featurizer.pad_to, featurizer.normalize = 0, None
    try:
        with torch.inference_mode():
            features, length = model.preprocessor(
                input_signal=torch.from_numpy(samples)[None], length=torch.tensor([len(samples)])
            )
    finally:
        featurizer.pad_to, featurizer.normalize = pad_to, normalize
    valid = int(length[0])
    out = np.zeros((1, features.shape[1], valid + 1), dtype=np.float32)
    out[:, :, :valid] = features[:, :, :valid].numpy()
    return out


def ort_transcribe(out_dir: str | os.PathLike, model, paths: list[str], threads: int = 1) -> list[str]:
    """Greedy transcripts of audio files by the exported model in ONNX Runtime, features from ``model``'s
    NeMo preprocessor (:func:`nemo_features`)."""
    from asr_transfer.manifests.audio import decode_mono

    runtime = OnnxRuntimeCtc(out_dir, threads)
    rate = model_sample_rate(model)
    return [runtime.transcribe(nemo_features(model, decode_mono(path, rate))) for path in paths]


def exported_metadata(out_dir: str | os.PathLike) -> dict[str, str]:
    """The metadata :func:`export_onnx` wrote into ``model.onnx`` (what sherpa-onnx reads)."""
    import onnx

    model = onnx.load(str(Path(out_dir) / MODEL_FILE), load_external_data=False)
    return {entry.key: entry.value for entry in model.metadata_props}


def sherpa_recognizer(out_dir: str | os.PathLike, threads: int = 1):
    """sherpa-onnx's offline NeMo CTC recognizer of an exported folder (greedy search)."""
    import sherpa_onnx

    model = Path(out_dir) / MODEL_FILE
    metadata = exported_metadata(out_dir)
    return sherpa_onnx.OfflineRecognizer.from_nemo_ctc(
        model=str(model),
        tokens=str(Path(out_dir) / TOKENS_FILE),
        num_threads=threads,
        sample_rate=int(metadata.get("sample_rate", TARGET_RATE)),
        feature_dim=int(metadata.get("feat_dim", 80)),
        decoding_method="greedy_search",
    )


def sherpa_transcribe(
    out_dir: str | os.PathLike, paths: list[str], threads: int = 1, recognizer=None, rate: int | None = None
) -> list[str]:
    """Greedy transcripts of audio files by sherpa-onnx, from the waveform (its own features), one at a time.
    ``recognizer`` and ``rate`` (Hz; default: the export's metadata) may be given to reuse them across calls."""
    from asr_transfer.manifests.audio import decode_mono

    recognizer = recognizer or sherpa_recognizer(out_dir, threads)
    rate = rate or int(exported_metadata(out_dir).get("sample_rate", TARGET_RATE))
    texts = []
    for path in paths:
        stream = recognizer.create_stream()
        stream.accept_waveform(rate, decode_mono(path, rate))
        recognizer.decode_stream(stream)
        texts.append(" ".join(stream.result.text.split()))
    return texts
