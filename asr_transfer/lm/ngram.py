"""Interpolated modified Kneser-Ney n-gram models over integer tokens, written as ARPA.

In: sentences as lists of token ids (0 .. vocab_size-1), an order N >= 2 and the vocabulary size.
Out: an ARPA file whose symbols are ``chr(token + 100)`` (NeMo's ``DEFAULT_TOKEN_OFFSET``) plus ``<s>``,
``</s>`` and ``<unk>``; every vocabulary token is a unigram, so each context's next-token probabilities
(tokens and ``</s>``) sum to 1 after backoff.

Memory: the sentences stream through once. The highest order's counts are spilled to sorted shard files
whenever ``spill_every`` distinct n-grams are held, merged back as one sorted stream, and its
probabilities are written context by context; only the lower orders (suffixes of the highest order and
sentence-initial n-grams) are held in memory. Discounts are Chen and Goodman's D1, D2, D3+ per order,
from the count-of-counts of (adjusted) counts; lower orders use continuation counts (the number of
distinct left extensions), and n-grams that begin with ``<s>``, which cannot be extended left, keep
their raw counts, as in KenLM.

Which model's vocabulary an LM is over is recorded beside it (``train-lm``'s ``OUT.arpa.json``), not in the
file: NeMo's loader asserts that the first line is ``\\data\\``, so ARPA's usual free text before it is not
possible. ``arpa_problem`` checks a file against what that loader needs before it is given one.
"""

from __future__ import annotations

import functools
import heapq
import math
import os
import re
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from asr_transfer.errors import UserError
from asr_transfer.fileio import atomic_open


class EmptyCorpus(UserError):
    pass


BOS, EOS = -1, -2  # NeMo's _BOS_ID and _EOS_ID
TOKEN_OFFSET = 100
NO_PROBABILITY = -99.0  # ARPA's log10 of zero, for <s> and <unk>
SPECIAL_SYMBOLS = ("<s>", "</s>", "<unk>")


def symbol(token: int) -> str:
    if token == BOS:
        return "<s>"
    if token == EOS:
        return "</s>"
    return chr(token + TOKEN_OFFSET)


def padded(sentence: list[int]) -> list[int]:
    return [BOS, *sentence, EOS]


class HighestOrderCounts:
    """Counts of the highest-order n-grams, spilled to sorted shards to bound memory."""

    def __init__(self, spill_every: int, folder: str):
        self.counts: Counter = Counter()
        self.spill_every, self.folder, self.shards = spill_every, folder, []

    def add(self, ngram: tuple[int, ...]) -> None:
        self.counts[ngram] += 1
        if len(self.counts) >= self.spill_every:
            self.spill()

    def spill(self) -> None:
        if not self.counts:
            return
        path = os.path.join(self.folder, f"shard{len(self.shards)}.txt")
        with open(path, "w", encoding="utf-8") as handle:
            for ngram, count in sorted(self.counts.items()):
                handle.write(" ".join(map(str, ngram)) + f"\t{count}\n")
        self.shards.append(path)
        self.counts.clear()

    def sorted_stream(self) -> Iterator[tuple[tuple[int, ...], int]]:
        """Every n-gram once, in sorted order, with its total count (a k-way merge of the shards)."""
        self.spill()

        def read(path):
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    ngram, count = line.rstrip("\n").split("\t")
                    yield tuple(int(token) for token in ngram.split()), int(count)

        current, total = None, 0
        for ngram, count in heapq.merge(*(read(path) for path in self.shards)):
            if ngram != current:
                if current is not None:
                    yield current, total
                current, total = ngram, 0
            total += count
        if current is not None:
            yield current, total


@dataclass
class Counts:
    order: int
    highest: HighestOrderCounts
    sentence_initial: Counter = field(default_factory=Counter)  # n-grams starting with <s>, orders < N
    sentences: int = 0


def count_sentences(sentences: Iterable[list[int]], order: int, folder: str, spill_every: int) -> Counts:
    counts = Counts(order, HighestOrderCounts(spill_every, folder))
    for sentence in sentences:
        tokens = padded(sentence)
        counts.sentences += 1
        for start in range(len(tokens) - order + 1):
            counts.highest.add(tuple(tokens[start : start + order]))
        for length in range(1, min(order - 1, len(tokens)) + 1):
            counts.sentence_initial[tuple(tokens[:length])] += 1
    return counts


def lower_order_counts(counts: Counts, highest_keys: Iterable[tuple[int, ...]]) -> dict[int, Counter]:
    """Adjusted counts of orders 1..N-1: the continuation count of an n-gram is the number of distinct
    tokens (<s> included) seen before it, i.e. of next-order n-grams it ends; an n-gram that starts with
    <s> has nothing before it and keeps its raw count."""
    tables: dict[int, Counter] = {n: Counter() for n in range(1, counts.order)}
    for ngram in highest_keys:
        tables[counts.order - 1][ngram[1:]] += 1
    for n in range(counts.order - 1, 0, -1):
        tables[n].update({ngram: count for ngram, count in counts.sentence_initial.items() if len(ngram) == n})
        if n > 1:
            for ngram in tables[n]:
                tables[n - 1][ngram[1:]] += 1
    return tables


def discounts(count_of_counts: Counter) -> tuple[float, float, float]:
    """Chen and Goodman's D1, D2, D3+ from how many n-grams have (adjusted) count 1, 2, 3 and 4; where a
    tiny corpus leaves one of those at zero, the fixed 0.5 / 1.0 / 1.5 are used instead."""
    n1, n2, n3, n4 = (count_of_counts[c] for c in (1, 2, 3, 4))
    if min(n1, n2, n3, n4) == 0:
        return 0.5, 1.0, 1.5
    y = n1 / (n1 + 2 * n2)
    values = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    return tuple(min(max(value, 0.0), float(cap)) for value, cap in zip(values, (1, 2, 3), strict=True))


def discount_of(count: int, table: tuple[float, float, float]) -> float:
    return table[min(count, 3) - 1]


def context_groups(entries: Iterable[tuple[tuple[int, ...], int]]) -> Iterator[tuple[tuple[int, ...], list]]:
    """(context, [(token, count), ...]) for a stream sorted by n-gram (so grouped by context)."""
    context, group = None, []
    for ngram, count in entries:
        if ngram[:-1] != context:
            if group:
                yield context, group
            context, group = ngram[:-1], []
        group.append((ngram[-1], count))
    if group:
        yield context, group


def interpolate(group: list, table, lower) -> tuple[dict[int, float], float]:
    """Probabilities of a context's seen tokens and the context's backoff weight (its discounted mass)."""
    total = sum(count for _, count in group)
    mass = sum(discount_of(count, table) for _, count in group) / total
    return {token: (count - discount_of(count, table)) / total + mass * lower(token) for token, count in group}, mass


@dataclass
class Model:
    """Probabilities (natural, not log) of listed n-grams and backoff weights of contexts: ARPA's content."""

    order: int
    probabilities: dict[int, dict[tuple[int, ...], float]]
    backoffs: dict[tuple[int, ...], float]

    def probability(self, context: tuple[int, ...], token: int) -> float:
        """p(token | context) by the ARPA rule: the listed n-gram, else the context's backoff weight times
        p(token | shorter context)."""
        context = tuple(context[len(context) - (self.order - 1) :]) if len(context) >= self.order else tuple(context)
        ngram = (*context, token)
        found = self.probabilities.get(len(ngram), {}).get(ngram)
        if found is not None:
            return found
        if not context:
            return 0.0
        return self.backoffs.get(context, 1.0) * self.probability(context[1:], token)


def vocabulary(vocab_size: int) -> list[int]:
    """What may follow a context: every token and the sentence end (never <s>)."""
    return [*range(vocab_size), EOS]


def lower_order_model(order: int, tables: dict[int, Counter], vocab_size: int) -> Model:
    """Orders 1..N-1 in memory: unigrams interpolate with the uniform distribution, so unseen tokens get
    the discounted mass."""
    model = Model(order, {n: {} for n in range(1, order)}, {})
    tokens = vocabulary(vocab_size)
    seen = [(token, tables[1][(token,)]) for token in tokens if tables[1].get((token,), 0) > 0]
    probabilities, mass = interpolate(seen, discounts(Counter(c for _, c in seen)), lambda token: 1 / len(tokens))
    model.backoffs[()] = mass
    for token in tokens:
        model.probabilities[1][(token,)] = probabilities.get(token, mass / len(tokens))
    for n in range(2, order):
        table = discounts(Counter(tables[n].values()))
        for context, group in context_groups(sorted(tables[n].items())):
            probabilities, mass = interpolate(group, table, lambda token, c=context: model.probability(c[1:], token))
            model.backoffs[context] = mass
            for token, probability in probabilities.items():
                model.probabilities[n][(*context, token)] = probability
    return model


def log10(value: float) -> float:
    return math.log10(value) if value > 0 else NO_PROBABILITY


def arpa_line(ngram: tuple[int, ...], probability: float, backoff: float | None) -> str:
    line = f"{log10(probability):.6f}\t{' '.join(symbol(token) for token in ngram)}"
    return line + (f"\t{log10(backoff):.6f}" if backoff is not None else "") + "\n"


@dataclass
class Summary:
    sentences: int
    ngrams: dict[int, int]


def write_arpa(
    sentences: Iterable[list[int]], order: int, vocab_size: int, out_path: str, spill_every: int = 2_000_000
) -> Summary:
    """Count, smooth and write the model; returns what was counted."""
    if order < 2:
        raise ValueError("order must be at least 2 (NeMo's loader cannot read a unigram-only ARPA)")
    with tempfile.TemporaryDirectory(prefix="ngram-", dir=os.path.dirname(os.path.abspath(out_path))) as folder:
        counts = count_sentences(sentences, order, folder, spill_every)
        if counts.sentences == 0:
            raise EmptyCorpus("no sentence is left to train the LM on; give more text")
        top_count_of_counts: Counter = Counter()

        def highest_keys():
            for ngram, count in counts.highest.sorted_stream():
                top_count_of_counts[count] += 1
                yield ngram

        tables = lower_order_counts(counts, highest_keys())
        model = lower_order_model(order, tables, vocab_size)
        top_table = discounts(top_count_of_counts)
        body = os.path.join(folder, "highest.txt")
        top_ngrams = 0
        with open(body, "w", encoding="utf-8") as handle:
            for context, group in context_groups(counts.highest.sorted_stream()):
                probabilities, mass = interpolate(
                    group, top_table, lambda token, c=context: model.probability(c[1:], token)
                )
                model.backoffs[context] = mass
                for token, probability in probabilities.items():
                    handle.write(arpa_line((*context, token), probability, None))
                    top_ngrams += 1
        # the unigram section also lists <s> and <unk>
        sizes = {n: len(model.probabilities[n]) + (2 if n == 1 else 0) for n in range(1, order)}
        sizes[order] = top_ngrams
        with atomic_open(out_path) as out:
            out.write("\\data\\\n")
            for n in range(1, order + 1):
                out.write(f"ngram {n}={sizes[n]}\n")
            for n in range(1, order):
                out.write(f"\n\\{n}-grams:\n")
                if n == 1:
                    out.write(arpa_line((BOS,), 0.0, model.backoffs.get((BOS,))))
                    out.write(f"{NO_PROBABILITY:.6f}\t<unk>\n")
                for ngram, probability in sorted(model.probabilities[n].items()):
                    out.write(arpa_line(ngram, probability, model.backoffs.get(ngram)))
            out.write(f"\n\\{order}-grams:\n")
            with open(body, encoding="utf-8") as handle:
                for line in handle:
                    out.write(line)
            out.write("\n\\end\\\n")
    return Summary(counts.sentences, sizes)


def read_arpa(path: str) -> Model:
    """An ARPA file of this module's symbols back as a Model (for checks; NeMo has its own loader)."""
    specials = {"<s>": BOS, "</s>": EOS}
    probabilities: dict[int, dict] = defaultdict(dict)
    backoffs, order, current = {}, 0, 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if line.startswith("\\") and line.endswith("-grams:"):
                current = int(line[1:].split("-")[0])
                order = max(order, current)
                continue
            if not current or not line or line.startswith("\\"):
                continue
            fields = line.split("\t")
            if fields[1] == "<unk>":
                continue
            ngram = tuple(
                specials[part] if part in specials else ord(part) - TOKEN_OFFSET for part in fields[1].split(" ")
            )
            probabilities[current][ngram] = 10 ** float(fields[0]) if float(fields[0]) > NO_PROBABILITY else 0.0
            if len(fields) > 2:
                backoffs[ngram] = 10 ** float(fields[2])
    return Model(order, dict(probabilities), backoffs)


def token_symbols(vocab_size: int) -> set[str]:
    """The unigrams of a token-level LM over ``vocab_size`` tokens: what ``write_arpa`` lists and NeMo expects."""
    return {symbol(token) for token in range(vocab_size)} | set(SPECIAL_SYMBOLS)


@dataclass(frozen=True)
class ArpaProblem:
    what: str
    vocabulary: bool  # a readable file whose symbols are not this model's tokens (rather than a broken file)


def arpa_problem(path: str, vocab_size: int) -> ArpaProblem | None:
    """Why NeMo's ARPA loader would fail on ``path``, or read it as something other than a token-level LM over
    ``vocab_size`` tokens, or None. Cached per file state: tune-lm sets the same LM up once per grid point."""
    stat = os.stat(path)
    return _arpa_problem(os.path.abspath(path), stat.st_size, stat.st_mtime_ns, vocab_size)


NGRAM_COUNT = re.compile(r"ngram\s+(\d+)\s*=\s*(\d+)")
SECTION = re.compile(r"\\(\d+)-grams:")


@functools.lru_cache(maxsize=16)
def _arpa_problem(path: str, _size: int, _mtime_ns: int, vocab_size: int) -> ArpaProblem | None:
    """One pass holding only the unigrams. NeMo also needs every n-gram's context and suffix to be listed (ARPA's
    rule); checking that would hold the whole model in memory, so a violation is left to NeMo's loader."""
    try:
        with open(path, encoding="utf-8") as handle:
            return _scan_arpa(enumerate(handle, start=1), vocab_size)
    except UnicodeDecodeError as error:
        return ArpaProblem(f"it is not UTF-8 text (byte {error.start}), so not an ARPA file", False)


def _scan_arpa(lines, vocab_size: int) -> ArpaProblem | None:
    first = next(lines, (1, ""))[1].strip()
    if first != "\\data\\":
        seen = f"line 1 is {first[:40]!r}" if first else "line 1 is empty"
        return ArpaProblem(f"it does not begin with \\data\\ ({seen})", False)
    header: dict[int, int] = {}
    for number, line in lines:
        if not line.strip():
            break
        match = NGRAM_COUNT.fullmatch(line.strip())
        if not match:
            return ArpaProblem(f"line {number} ({line.strip()[:40]!r}) is not 'ngram N=COUNT' in the header", False)
        header[int(match[1])] = int(match[2])
    order = max(header, default=0)
    if order < 2 or sorted(header) != list(range(1, order + 1)):
        return ArpaProblem(f"it counts orders {sorted(header)} in its header, not 1 to N with N >= 2", False)
    found: Counter = Counter()
    unigrams: set[str] = set()
    section, malformed, ended, last = 0, None, False, 1
    for number, line in lines:
        last = number
        line = line.rstrip("\n")
        if not line:
            continue
        if line.startswith("\\end\\"):
            ended = True
            break
        if line.startswith("\\"):
            match = SECTION.fullmatch(line.strip())
            section = int(match[1]) if match else section
            continue
        if malformed:
            continue
        fields = line.split("\t")
        symbols = fields[1].split(" ") if len(fields) in (2, 3) else []
        if not section:
            malformed = f"line {number} comes before any \\N-grams: section"
        elif not symbols or not _numbers(fields[:1] + fields[2:]):
            malformed = f"line {number} ({line[:40]!r}) is not 'log10(p)<TAB>n-gram[<TAB>log10(backoff)]'"
        elif len(symbols) != section:
            malformed = f"line {number} holds {len(symbols)} symbols in the \\{section}-grams: section"
        elif section == 1:
            unigrams.add(symbols[0])
        elif any(part not in unigrams for part in symbols):
            malformed = f"line {number} uses a symbol that is no unigram"
        found[section] += 1
    if not ended:
        return ArpaProblem(f"it is cut short: it ends at line {last} without \\end\\", False)
    if found[1] == header[1]:
        problem = unigram_problem(unigrams, vocab_size)
        if problem:
            return ArpaProblem(problem, True)
    if malformed:
        return ArpaProblem(malformed, False)
    for n in sorted({*header, *found}):
        if found[n] != header.get(n, 0):
            return ArpaProblem(
                f"its header says ngram {n}={header.get(n, 0)}, and its \\{n}-grams: section holds {found[n]}", False
            )
    return None


def _numbers(texts: list[str]) -> bool:
    try:
        for text in texts:
            float(text)
    except ValueError:
        return False
    return True


def unigram_problem(unigrams: set[str], vocab_size: int) -> str | None:
    """Why these unigrams are not exactly the token symbols of a model with ``vocab_size`` tokens, or None."""
    expected = token_symbols(vocab_size)
    foreign = sorted(unigrams - expected)
    words = [part for part in foreign if len(part) > 1]
    if words:
        return (
            f"its unigrams ({', '.join(map(repr, words[:3]))}, ...) are words or subword pieces, not this model's "
            "token symbols: it is a word-level LM, or one over raw SentencePiece pieces"
        )
    beyond = [ord(part) - TOKEN_OFFSET for part in foreign if ord(part) - TOKEN_OFFSET >= vocab_size]
    if beyond:
        return f"it holds token {max(beyond)}, and the model has {vocab_size} tokens"
    if foreign:
        return (
            f"its unigrams ({', '.join(map(repr, foreign[:3]))}, ...) are not this model's token symbols "
            f"(token i is written as chr(i + {TOKEN_OFFSET}))"
        )
    missing = sorted(expected - unigrams)
    tokens = [ord(part) - TOKEN_OFFSET for part in missing if part not in SPECIAL_SYMBOLS]
    if tokens:
        return (
            f"it lists no unigram for {len(tokens)} of this model's {vocab_size} tokens (e.g. token {tokens[0]}), "
            "so it was not built for this model's vocabulary"
        )
    if missing:
        return f"it lacks the unigrams {' '.join(missing)}, which token-level LMs from train-lm list"
    return None
