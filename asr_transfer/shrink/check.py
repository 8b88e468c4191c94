"""Did step 1 do something useful? A step-1 student against a random one, before step 2 starts.

In: the teacher, a student ``.nemo`` as step 2 receives it (its own CTC head: step 1 trains the head
through the log-probability match, a random student keeps its random head), the teacher layer each
student layer was cut from, and a transcribed dev manifest. Out: per student, its dev CTC loss (NeMo's
CTC objective, blank last, summed over each utterance's frames and averaged over utterances: what
step 2's ``val_loss`` estimates at step 0), its greedy dev WER/CER (``asr-transfer evaluate``), and per
layer the linear CKA between the student layer's output and its teacher layer's output on the same
features, frames pooled over all dev utterances with padding left out. ``usefulness`` puts a step-1
student and a random student of the same size and seed side by side.

Whether step 1's contrastive (CLIP) term learned anything, the first thing to rule out when two-step
training from random init loses: ``clip_probe`` scores the final encoder's time-pooled vectors (what the
CLIP term compares) on dev, where chance is 1/N for retrieval, and measures how alike the utterances'
vectors are (a mean cosine near 1: every utterance pools to nearly the same vector, so the contrastive
target carries little); ``loss_terms`` reads step 1's training log: each term early and late, the CLIP
term against its chance value ln(batch size), and each term's share of the loss being minimized.
"""

from __future__ import annotations

import csv
import math
import statistics

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from asr_transfer.fileio import read_manifest
from asr_transfer.inference.batches import AudioManifest
from asr_transfer.manifests.audio import model_sample_rate


class LinearCKA:
    """Linear CKA (Kornblith et al., ICML 2019, "Similarity of Neural Network Representations Revisited",
    eq. for the linear kernel): CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) for X (n x p) and
    Y (n x q) with columns centred (Xc, Yc). Accumulated batch by batch from sums in float64, since
    Xc^T Yc = X^T Y - n mean(X)^T mean(Y): no frame is held. 1 for Y = X A with A orthogonal or a scale,
    near 0 for unrelated features."""

    def __init__(self):
        self.n = 0
        self.sums: dict[str, torch.Tensor] = {}

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """``x``: n x p, ``y``: n x q, the same n frames in the same order."""
        x, y = x.detach().double().cpu(), y.detach().double().cpu()
        parts = {"x": x.sum(0), "y": y.sum(0), "xx": x.T @ x, "yy": y.T @ y, "yx": y.T @ x}
        for key, value in parts.items():
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.n += x.shape[0]

    def value(self) -> float:
        n, s = self.n, self.sums
        if n < 2:
            raise ValueError("linear CKA needs at least two frames")
        mean_x, mean_y = s["x"] / n, s["y"] / n
        xx = s["xx"] - n * torch.outer(mean_x, mean_x)
        yy = s["yy"] - n * torch.outer(mean_y, mean_y)
        yx = s["yx"] - n * torch.outer(mean_y, mean_x)
        denominator = torch.linalg.matrix_norm(xx) * torch.linalg.matrix_norm(yy)
        return float(yx.pow(2).sum() / denominator) if denominator > 0 else 0.0


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two frame matrices (n x p, n x q); see :class:`LinearCKA`."""
    cka = LinearCKA()
    cka.add(x, y)
    return cka.value()


def encoder_layers(model) -> list[torch.nn.Module]:
    """The encoder's repeated layers in order (``students.layer_list``'s)."""
    if hasattr(model.encoder, "layers"):
        return list(model.encoder.layers)  # ConformerEncoder
    return list(model.encoder.encoder)  # ConvASREncoder: JasperBlocks


class LayerOutputs:
    """Forward hooks that keep each chosen layer's output as B x T x D. A Conformer layer returns
    B x T x D; a Jasper block returns ([B x D x T], lengths)."""

    def __init__(self, model, indices: list[int]):
        self.outputs: dict[int, torch.Tensor] = {}
        layers = encoder_layers(model)
        self.handles = [layers[index].register_forward_hook(self.hook(index)) for index in indices]

    def hook(self, index: int):
        def keep(module, args, output):
            if isinstance(output, tuple):  # JasperBlock: (list of outputs, lengths)
                output = output[0][-1].transpose(1, 2)
            self.outputs[index] = output

        return keep

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


class TranscribedAudio(Dataset):
    """(waveform, text) pairs of a manifest."""

    def __init__(self, manifest: str, sample_rate: int):
        self.audio = AudioManifest(manifest, sample_rate)
        self.texts = [entry.get("text", "") for entry in read_manifest(manifest)]

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int):
        return self.audio[index], self.texts[index]


def collate_transcribed(items):
    waves, texts = zip(*items, strict=True)
    lengths = torch.tensor([len(wave) for wave in waves])
    signal = torch.zeros(len(waves), int(lengths.max()))
    for row, wave in enumerate(waves):
        signal[row, : len(wave)] = wave
    return signal, lengths, list(texts)


def ctc_targets(model, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded label ids (B x U) and their counts, as NeMo's datasets tokenize the manifest text."""
    from asr_transfer.training.data import label_ids

    ids = [label_ids(model, text) for text in texts]
    counts = torch.tensor([len(row) for row in ids])
    targets = torch.zeros(len(ids), max(int(counts.max()), 1), dtype=torch.long)
    for row, labels in enumerate(ids):
        targets[row, : len(labels)] = torch.tensor(labels, dtype=torch.long)
    return targets, counts


def ctc_loss_sum(model, log_probs: torch.Tensor, lengths: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """Summed over the batch's utterances: -log p(text | audio) under CTC (Graves et al. 2006), blank the
    last class as in NeMo, infinite losses (text longer than the frames allow) set to 0 as NeMo does."""
    targets, counts = ctc_targets(model, texts)
    return torch.nn.functional.ctc_loss(
        log_probs.float().transpose(0, 1),
        targets.to(log_probs.device),
        lengths,
        counts.to(log_probs.device),
        blank=log_probs.shape[-1] - 1,
        reduction="sum",
        zero_infinity=True,
    )


def frames(output: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """B x T x D -> (valid frames) x D: padding left out."""
    mask = torch.arange(output.shape[1], device=output.device)[None, :] < lengths.to(output.device)[:, None]
    return output[mask]


def mean_pairwise_cosine(vectors: torch.Tensor) -> float:
    """N x D -> the mean cosine between two different rows (1: all rows point the same way)."""
    unit = F.normalize(vectors.double(), dim=-1)
    n = unit.shape[0]
    if n < 2:
        raise ValueError("a mean pairwise cosine needs at least two vectors")
    return float(((unit @ unit.T).sum() - n) / (n * (n - 1)))


def clip_probe(student_pooled: torch.Tensor, teacher_pooled: torch.Tensor) -> dict:
    """The CLIP term's task on the whole dev set. ``student_pooled``, ``teacher_pooled``: N x D, row i the
    time-pooled final encoder output of dev utterance i (as ``losses.clip_loss`` pools it). Returns
    ``retrieval``: the share of utterances whose student vector is closest (cosine) to its own teacher
    vector among all N (chance 1/N), ``chance`` (1/N) and ``pooled_cosine``: the student vectors' mean
    pairwise cosine."""
    similarity = F.normalize(student_pooled.double(), dim=-1) @ F.normalize(teacher_pooled.double(), dim=-1).T
    hits = (similarity.argmax(dim=1) == torch.arange(similarity.shape[0])).double().mean()
    return {
        "retrieval": round(float(hits), 4),
        "chance": round(1 / similarity.shape[0], 4),
        "pooled_cosine": round(mean_pairwise_cosine(student_pooled), 4),
    }


def loss_terms(log_csv: str, batch_size: int, window: int = 10) -> dict:
    """Step 1's loss terms from its ``log.csv`` (a column per term, ``loss`` their sum): per term the mean
    of the first and of the last ``window`` steps and its share of the last steps' loss; with a ``clip``
    column, ``clip_chance``: ln(batch_size), the CLIP term's value when the student's vectors tell the
    batch's utterances apart no better than chance (symmetric cross-entropy over B choices)."""
    with open(log_csv, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{log_csv} holds no step")
    names = [name for name in rows[0] if name not in ("step", "seconds", "lr", "loss")]
    first, last = rows[:window], rows[-window:]
    last_loss = statistics.fmean(float(row["loss"]) for row in last)
    terms = {}
    for name in names:
        late = statistics.fmean(float(row[name]) for row in last)
        terms[name] = {
            "first": round(statistics.fmean(float(row[name]) for row in first), 4),
            "last": round(late, 4),
            "share_of_loss": round(late / last_loss, 4) if last_loss else None,
        }
    found = {"steps": len(rows), "window": window, "terms": terms}
    if "clip" in terms:
        found["clip_chance"] = round(math.log(batch_size), 4)
    return found


def compare(teacher, student, pairs: list[tuple[int, int]], dev_manifest: str, batch_size: int = 8) -> dict:
    """The student's dev CTC loss (mean over utterances), per (student layer, teacher layer) pair the
    linear CKA of their outputs over the dev frames, and the CLIP term's task on dev (``clip_probe``) with
    the teacher's own pooled vectors' mean cosine. Both models in eval mode, no gradient."""
    from asr_transfer.shrink.losses import masked_mean_over_time

    device = next(teacher.parameters()).device
    student = student.to(device)
    modes = (teacher.training, student.training)
    teacher.eval()
    student.eval()
    loader = DataLoader(
        TranscribedAudio(dev_manifest, model_sample_rate(student)),
        batch_size=batch_size,
        collate_fn=collate_transcribed,
    )
    student_hooks = LayerOutputs(student, [s for s, _ in pairs])
    teacher_hooks = LayerOutputs(teacher, [t for _, t in pairs])
    ckas = [LinearCKA() for _ in pairs]
    loss, utterances = 0.0, 0
    pooled = {"teacher": [], "student": []}
    try:
        with torch.no_grad():
            for signal, lengths, texts in loader:
                signal, lengths = signal.to(device), lengths.to(device)
                for model in (teacher, student):
                    features, feature_lengths = model.preprocessor(input_signal=signal, length=lengths)
                    encoded, encoded_lengths = model.encoder(audio_signal=features, length=feature_lengths)
                    key = "student" if model is student else "teacher"
                    pooled[key].append(masked_mean_over_time(encoded.float(), encoded_lengths).cpu())
                    if model is student:
                        log_probs = student.decoder(encoder_output=encoded)
                        loss += float(ctc_loss_sum(student, log_probs, encoded_lengths, texts))
                # every layer of a Conformer keeps the encoder's output frame rate; a Jasper block before
                # a stride would not, but only blocks without a stride are ever dropped or compared
                for cka, (s, t) in zip(ckas, pairs, strict=True):
                    cka.add(
                        frames(student_hooks.outputs[s], encoded_lengths),
                        frames(teacher_hooks.outputs[t], encoded_lengths),
                    )
                utterances += len(texts)
    finally:
        student_hooks.remove()
        teacher_hooks.remove()
        teacher.train(modes[0])
        student.train(modes[1])
    student_pooled, teacher_pooled = torch.cat(pooled["student"]), torch.cat(pooled["teacher"])
    return {
        "dev_ctc_loss": loss / max(utterances, 1),
        "cka": [round(cka.value(), 6) for cka in ckas],
        "clip": clip_probe(student_pooled, teacher_pooled),
        "teacher_pooled_cosine": round(mean_pairwise_cosine(teacher_pooled), 4),
    }


def student_report(teacher, student_path: str, teacher_layers: list[int], dev_manifest: str, lang: str | None) -> dict:
    """One student's row of the check: dev CTC loss, greedy dev WER/CER, CKA per layer against the teacher."""
    from asr_transfer.inference.evaluate import evaluate
    from asr_transfer.inference.model import load_model

    student = load_model(student_path, "cpu")
    pairs = list(enumerate(teacher_layers))
    found = compare(teacher, student, pairs, dev_manifest)
    greedy = evaluate(student_path, dev_manifest, model=student, lang=lang)
    return {
        "model": student_path,
        "dev_ctc_loss": round(found["dev_ctc_loss"], 4),
        "dev_wer": greedy["wer"],
        "dev_cer": greedy["cer"],
        "cka": found["cka"],
        "mean_cka": round(sum(found["cka"]) / len(found["cka"]), 6),
        "clip": found["clip"],
        "teacher_pooled_cosine": found["teacher_pooled_cosine"],
    }


def usefulness(
    teacher, step1_student: str, random_student: str, teacher_layers: list[int], dev_manifest: str, lang: str | None
) -> dict:
    """The step-1 student and a random student of the same size and seed, each as step 2 would start
    from it; ``teacher_layers[j]``: the teacher layer student layer j was cut from (the random student's
    layer j is compared with the same teacher layer, as the reference)."""
    step1 = student_report(teacher, step1_student, teacher_layers, dev_manifest, lang)
    random = student_report(teacher, random_student, teacher_layers, dev_manifest, lang)
    random.pop("teacher_pooled_cosine")
    return {
        "teacher_layers": list(teacher_layers),
        "teacher_pooled_cosine": step1.pop("teacher_pooled_cosine"),
        "step1": step1,
        "random": random,
        "step1_better": {
            "dev_ctc_loss": step1["dev_ctc_loss"] < random["dev_ctc_loss"],
            "dev_wer": None if step1["dev_wer"] is None else step1["dev_wer"] < random["dev_wer"],
            "mean_cka": step1["mean_cka"] > random["mean_cka"],
            "clip_retrieval": step1["clip"]["retrieval"] > random["clip"]["retrieval"],
        },
    }
