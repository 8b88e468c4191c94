"""Phrase boosting for CTC beam search (``--boost PHRASES.txt``) and ``asr-transfer tune-boost``.

In: a phrase list, one term per line, optionally followed by a tab (or spaces) and a weight, the per-token
boosting score of that term (default ``--boost-score``, 1.0); blank lines and ``#`` comments are skipped.
Terms are normalized like references (language file of ``--lang``, else NFKC, lower case, no punctuation).
Out: NeMo 3.0's boosting tree (``nemo.collections.asr.parts.context_biasing``: a ``ContextGraph`` of the
terms' token ids turned into a ``GPUBoostingTreeModel``) fused into NeMo's batched CTC beam search
(``beam_batch``) beside an n-gram LM when there is one:
``score = acoustic + lm_alpha * LM + boost_alpha * boost + beam_beta * length``.
``tune-boost`` picks ``boost_alpha`` on dev (log-probabilities computed once, each alpha re-decodes) and
writes it with the phrase list to a JSON that ``evaluate``/``transcribe --boost-params`` read.

Errors: a term the model's vocabulary cannot write (a character outside a char model's labels, or a BPE
piece that becomes ``<unk>``) is refused with one line listing every such term (:class:`UserError`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass

from asr_transfer.errors import InputError, UserError
from asr_transfer.fileio import read_manifest, write_json

DEFAULT_BOOST_ALPHAS = "0,0.25,0.5,1,1.5,2"
DEFAULT_BOOST_ALPHA = 1.0
DEFAULT_BOOST_SCORE = 1.0


@dataclass(frozen=True)
class Phrase:
    text: str  # normalized as references are
    weight: float | None  # per-token boosting score; None: the list's default


@dataclass(frozen=True)
class Boost:
    """A phrase list and how strongly the beam search favours it (``alpha``, the fusion weight)."""

    path: str
    alpha: float = DEFAULT_BOOST_ALPHA
    score: float = DEFAULT_BOOST_SCORE  # default per-token score of terms without a weight
    lang: str | None = None
    beam_size: int | None = None  # beam size when the decoding asked for is greedy (tune-boost's)

    @property
    def label(self) -> str:
        return f"boost(alpha={self.alpha:g}, score={self.score:g}, {os.path.basename(self.path)})"


def read_phrases(path: str, lang: str | None = None) -> list[Phrase]:
    """The terms of ``path`` in order, normalized, duplicates dropped (the first wins)."""
    from asr_transfer.languages import text_rules

    if not os.path.isfile(path):
        raise InputError(f"--boost {path} does not exist; give a text file with one term per line")
    rules = text_rules(lang)
    phrases, seen = [], set()
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            text, weight = line, None
            head, _, last = line.replace("\t", " ").rpartition(" ")
            if head.strip():
                try:
                    weight = float(last)
                    text = head.strip()
                except ValueError:
                    pass
            if weight is not None and weight <= 0:
                raise UserError(f"{path} line {number}: weight {weight:g} must be positive; give a number > 0 or none")
            normalized = rules.normalize(text).text
            if not normalized:
                raise UserError(f"{path} line {number}: {text!r} normalizes to nothing; remove it or spell it out")
            if normalized not in seen:
                seen.add(normalized)
                phrases.append(Phrase(normalized, weight))
    if not phrases:
        raise UserError(f"--boost {path} holds no term; write one term per line (optionally a tab and a weight)")
    return phrases


def token_ids(model, text: str) -> list[int] | None:
    """``text`` as the model's token ids, or None when its vocabulary cannot write it."""
    from asr_transfer.training.models import is_bpe

    if is_bpe(model):
        tokenizer = model.tokenizer
        ids = tokenizer.text_to_ids(text)
        unk = getattr(tokenizer, "unk_id", None)
        if not ids or (unk is not None and unk >= 0 and unk in ids):
            return None
        # SentencePiece may map an unknown character to <unk> silently or drop it: compare the round trip
        return ids if tokenizer.ids_to_text(ids).strip() == text else None
    index = {label: position for position, label in enumerate(model.decoder.vocabulary)}
    if any(char not in index for char in text):
        return None
    return [index[char] for char in text]


def boosting_tree(model, phrases: list[Phrase], score: float = DEFAULT_BOOST_SCORE, path: str = "--boost"):
    """NeMo's ``GPUBoostingTreeModel`` over the model's token ids of ``phrases`` (built as NeMo's
    ``GPUBoostingTreeModel.from_config`` does for CTC: depth scaling 2, no final score, but with each
    term's own weight). Raises :class:`UserError` listing every term the model cannot write."""
    from nemo.collections.asr.parts.context_biasing.boosting_graph_batched import GPUBoostingTreeModel
    from nemo.collections.asr.parts.context_biasing.context_graph_universal import ContextGraph

    ids = [token_ids(model, phrase.text) for phrase in phrases]
    unwritable = [phrase.text for phrase, tokens in zip(phrases, ids, strict=True) if tokens is None]
    if unwritable:
        raise UserError(
            f"{path}: {len(unwritable)} term(s) the model's vocabulary cannot write: {', '.join(unwritable)}; "
            "spell them with the model's characters (asr-transfer inspect lists them) or remove them"
        )
    graph = ContextGraph(context_score=score, depth_scaling=2.0)
    graph.build(
        token_ids=ids,
        phrases=[phrase.text for phrase in phrases],
        scores=[phrase.weight or 0.0 for phrase in phrases],  # 0: the graph's context_score
    )
    blank = len(model.decoder.vocabulary)  # the tree scores every non-blank token
    # Triton kernels only where CUDA is; on CPU NeMo's PyTorch implementation runs.
    import torch

    return GPUBoostingTreeModel.from_context_graph(
        graph, vocab_size=blank, unk_score=0.0, final_eos_score=0.0, use_triton=torch.cuda.is_available()
    )


def apply_boost(model, boost: Boost, tree=None) -> None:
    """Adds the boosting tree to the model's ``beam_batch`` search (set with ``set_decoding`` first, with or
    without an LM) as one more fusion model with weight ``boost.alpha``. ``tree``: a prebuilt one."""
    search = getattr(getattr(model.decoding, "decoding", None), "search_algorithm", None)
    if search is None or not hasattr(search, "fusion_models"):
        raise UserError("--boost needs beam search; use --decoding beam (or an --lm)")
    if tree is None:
        tree = boosting_tree(model, read_phrases(boost.path, boost.lang), boost.score, boost.path)
    # NeMo builds the same pair of lists in BeamBatchedCTCInfer when its config names a boosting tree; the
    # tree is added here instead because NeMo's path needs a tokenizer, which character models lack.
    models = [fusion for fusion in (search.fusion_models or []) if not _is_tree(fusion)]
    alphas = list(search.fusion_models_alpha or [])[: len(models)]
    if boost.alpha:
        models, alphas = [*models, tree], [*alphas, float(boost.alpha)]
    search.fusion_models = models or None
    search.fusion_models_alpha = alphas or None


def _is_tree(fusion) -> bool:
    from nemo.collections.asr.parts.context_biasing.boosting_graph_batched import GPUBoostingTreeModel

    return isinstance(fusion, GPUBoostingTreeModel)


def add_boost_arguments(parser) -> None:
    """--boost, --boost-alpha, --boost-score and --boost-params, shared by evaluate and transcribe."""
    parser.add_argument(
        "--boost",
        help="phrase list to favour in beam search (one term per line, optionally a tab and a weight); NeMo's "
        "boosting tree; implies --decoding beam",
    )
    # Defaults None, applied in boost_from_args: a value given without --boost (or beside --boost-params, which
    # brings its own) would otherwise be ignored without a word.
    parser.add_argument(
        "--boost-alpha",
        type=float,
        help=f"weight of the boosting tree in the beam score, with --boost (default {DEFAULT_BOOST_ALPHA:g}; "
        "tune-boost tunes it)",
    )
    parser.add_argument(
        "--boost-score",
        type=float,
        help=f"per-token score of --boost terms without their own weight (default {DEFAULT_BOOST_SCORE:g})",
    )
    parser.add_argument(
        "--boost-params", help="JSON written by asr-transfer tune-boost: its phrase list, alpha, score and beam size"
    )


def check_boost_score(score: float) -> float:
    """``score`` when it is a positive number (NeMo's ContextGraph reads a score of 0 as 'the default'),
    else :class:`UserError`."""
    if not (0 < score < float("inf")):
        raise UserError(
            f"--boost-score {score:g} must be a positive number; give the per-token score of terms without a "
            f"weight, e.g. {DEFAULT_BOOST_SCORE:g}"
        )
    return score


def boost_from_args(args) -> Boost | None:
    lang = getattr(args, "lang", None)
    alpha, score = getattr(args, "boost_alpha", None), getattr(args, "boost_score", None)
    given = [flag for flag, value in (("--boost-alpha", alpha), ("--boost-score", score)) if value is not None]
    if score is not None:
        check_boost_score(score)
    if args.boost_params:
        if args.boost:
            raise UserError("give --boost or --boost-params, not both")
        if given:
            raise UserError(
                f"{' and '.join(given)} would be ignored: --boost-params {args.boost_params} brings tune-boost's "
                f"alpha and score; drop {' and '.join(given)}, or give --boost TERMS.txt instead of --boost-params"
            )
        if not os.path.isfile(args.boost_params):
            raise UserError(f"--boost-params {args.boost_params} does not exist; write it with asr-transfer tune-boost")
        try:
            with open(args.boost_params, encoding="utf-8") as handle:
                tuned = json.load(handle)
            phrases = os.path.join(os.path.dirname(os.path.abspath(args.boost_params)), tuned["boost"])
            beam = tuned.get("beam_size")
            return Boost(
                phrases, float(tuned["boost_alpha"]), float(tuned["boost_score"]), lang, int(beam) if beam else None
            )
        except (ValueError, KeyError, TypeError) as error:
            raise UserError(
                f"--boost-params {args.boost_params} is not a tune-boost result ({type(error).__name__}: {error}); "
                "write it with asr-transfer tune-boost"
            ) from None
    if args.boost:
        read_phrases(args.boost, lang)  # a bad list fails before the model loads
        return Boost(
            args.boost,
            DEFAULT_BOOST_ALPHA if alpha is None else alpha,
            DEFAULT_BOOST_SCORE if score is None else score,
            lang,
        )
    if given:
        raise UserError(f"{' and '.join(given)} would be ignored without --boost; give --boost TERMS.txt")
    return None


def beam_for_boost(decoding, boost: Boost | None = None):
    """The decoding to use under a boost: beam search (greedy has no fusion; the beam size tune-boost used,
    when ``boost`` records one), else as given."""
    from asr_transfer.inference.model import Decoding

    if decoding.strategy == "greedy":
        return Decoding("beam", (boost.beam_size if boost is not None else None) or decoding.beam_size)
    return decoding


def tune_boost(
    model_path: str,
    phrases_path: str,
    manifest: str,
    out_path: str,
    alphas: list[float],
    decoding=None,
    score: float = DEFAULT_BOOST_SCORE,
    batch_size: int = 16,
    lang: str | None = None,
) -> dict:
    """Best ``boost_alpha`` on dev by the primary metric (ties: the smaller alpha), with ``decoding`` (an
    LM and its tuned weights, or plain beam search) held fixed. Writes ``out_path`` and returns it as a dict,
    with the term recall of each grid point (share of boosted terms in the references found in the output)."""
    from asr_transfer.inference.evaluate import EVALUATION_FIELDS, error_rates, scoring_language, scoring_references
    from asr_transfer.inference.model import Decoding, load_model, set_decoding
    from asr_transfer.languages import primary_metric
    from asr_transfer.lm.tune import decode_all, dev_log_probs
    from asr_transfer.manifests.checks import require_manifest

    if not alphas:
        raise UserError("--alphas needs at least one value")
    check_boost_score(score)
    lang = scoring_language(lang, model_path)  # --lang, else the language the model records
    metric = primary_metric(lang)
    phrases = read_phrases(phrases_path, lang)
    require_manifest(manifest, EVALUATION_FIELDS, audio="open", role="dev manifest")
    references, reference_report = scoring_references(
        [entry["text"] for entry in read_manifest(manifest, EVALUATION_FIELDS)], lang
    )
    if not any(references):
        raise UserError(f"no reference of {manifest} is left to score after normalization; check its text (and --lang)")
    decoding = beam_for_boost(decoding or Decoding("beam", 8))
    model = load_model(model_path)
    set_decoding(model, decoding, model_path=model_path)
    tree = boosting_tree(model, phrases, score, phrases_path)  # unwritable terms fail before dev is decoded
    batches = dev_log_probs(model, manifest, batch_size)
    terms = [phrase.text for phrase in phrases]
    grid = []
    for alpha in alphas:
        set_decoding(model, decoding, model_path=model_path)
        apply_boost(model, Boost(phrases_path, alpha, score, lang), tree)
        hypotheses = decode_all(model, batches)
        scores = {**error_rates(references, hypotheses, metric), **term_recall(references, hypotheses, terms)}
        grid.append({"boost_alpha": alpha, **scores})
    best = min(grid, key=lambda point: (point[metric], point["boost_alpha"]))
    tuned = {
        "boost": os.path.relpath(phrases_path, os.path.dirname(os.path.abspath(out_path))),
        "boost_alpha": best["boost_alpha"],
        "boost_score": score,
        "decoding": decoding.label,
        "beam_size": decoding.beam_size,
        "metric": metric,
        "dev_manifest": manifest,
        "references": reference_report,
        "dev": {"without boost": next((p[metric] for p in grid if p["boost_alpha"] == 0), None), "boost": best[metric]},
        "grid": grid,
    }
    write_json(out_path, tuned)
    return tuned


def term_recall(references: list[str | None], hypotheses: list[str], terms: list[str]) -> dict:
    """Share of term occurrences in the references (whole words or word sequences) that the hypothesis of the
    same utterance also holds, counted per occurrence: ``{"term_recall": r or None, "term_count": n}``."""
    found = total = 0
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        if not reference:
            continue
        ref, hyp = reference.split(), (hypothesis or "").split()
        for term in terms:
            words = tuple(term.split())
            wanted = _occurrences(ref, words)
            total += wanted
            found += min(wanted, _occurrences(hyp, words))
    return {"term_recall": found / total if total else None, "term_count": total}


def _occurrences(words: list[str], term: tuple[str, ...]) -> int:
    size = len(term)
    return sum(1 for start in range(len(words) - size + 1) if tuple(words[start : start + size]) == term)


def build_parser() -> argparse.ArgumentParser:
    from asr_transfer.inference.evaluate import add_lang_argument
    from asr_transfer.lm.tune import float_list

    parser = argparse.ArgumentParser(
        prog="asr-transfer tune-boost",
        description="Pick the weight (alpha) of a phrase list's boosting tree in NeMo's beam_batch CTC search on "
        "dev, with the LM and its tuned weights (--lm-params) or plain beam search held fixed. Writes the phrase "
        "list and the best alpha for evaluate/transcribe --boost-params.",
        epilog="Example: asr-transfer tune-boost --model hall.nemo --boost terms.txt --manifest data/dev.json "
        "--lm-params lm/params.json --out lm/boost.json",
    )
    parser.add_argument("--model", required=True, help="the .nemo model")
    parser.add_argument("--boost", required=True, help="phrase list (one term per line, optionally a weight)")
    parser.add_argument("--manifest", required=True, help="dev manifest (audio and reference text)")
    parser.add_argument("--out", required=True, help="JSON file for the tuned weight")
    parser.add_argument(
        "--alphas", type=float_list, default=float_list(DEFAULT_BOOST_ALPHAS), help=f"({DEFAULT_BOOST_ALPHAS})"
    )
    parser.add_argument("--lm-params", help="tune-lm JSON: decode with its LM and weights (default: beam, no LM)")
    parser.add_argument("--beam-size", type=int, default=8, help="beam size without --lm-params (default 8)")
    parser.add_argument(
        "--boost-score",
        type=float,
        default=DEFAULT_BOOST_SCORE,
        help=f"per-token score of terms without a weight (default {DEFAULT_BOOST_SCORE:g})",
    )
    add_lang_argument(parser)
    parser.add_argument("--batch-size", type=int, default=16, help="utterances per forward pass (default 16)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from asr_transfer.inference.model import Decoding, decoding_from_args

    args = build_parser().parse_args(argv)
    if args.lm_params:
        args.lm, args.decoding = None, "beam"
        decoding = decoding_from_args(args)
    else:
        decoding = Decoding("beam", args.beam_size)
    tuned = tune_boost(
        args.model,
        args.boost,
        args.manifest,
        args.out,
        args.alphas,
        decoding,
        args.boost_score,
        args.batch_size,
        args.lang,
    )
    if len(args.alphas) > 1 and tuned["boost_alpha"] == max(args.alphas):
        print(
            f"tune-boost: the best alpha ({tuned['boost_alpha']:g}) is the grid's largest; widen --alphas",
            file=sys.stderr,
        )
    best = next(point for point in tuned["grid"] if point["boost_alpha"] == tuned["boost_alpha"])
    recall = "n/a" if best["term_recall"] is None else f"{best['term_recall']:.3f}"
    print(
        f"{args.out}: boost alpha {tuned['boost_alpha']:g}; dev {tuned['metric'].upper()} "
        f"{best[tuned['metric']]:.4f}, term recall {recall} ({tuned['decoding']})",
        file=sys.stderr,
    )
    return 0
