"""Ordered parallel map with a bounded window, for streaming work over corpora of any size.

In: a function, an iterable of items (read lazily), a number of worker processes. Out: the results in
input order. At most ``window`` chunks are in flight, so memory stays flat however long the input is
(``multiprocessing.Pool.imap`` would read the whole input into its task queue first).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _apply_chunk(function: Callable, chunk: list) -> list:
    return [function(item) for item in chunk]


def ordered_map(
    function: Callable,
    items: Iterable,
    jobs: int,
    chunk_size: int = 8,
    window_per_job: int = 4,
    initializer: Callable | None = None,
) -> Iterator:
    """``map(function, items)`` over ``jobs`` processes (in this process when ``jobs`` is 1)."""
    if jobs <= 1:
        if initializer:
            initializer()
        yield from map(function, items)
        return
    chunks = _chunked(items, chunk_size)
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=initializer) as pool:
        pending: deque = deque()
        for chunk in itertools.islice(chunks, jobs * window_per_job):
            pending.append(pool.submit(_apply_chunk, function, chunk))
        while pending:
            results = pending.popleft().result()
            next_chunk = next(chunks, None)
            if next_chunk is not None:
                pending.append(pool.submit(_apply_chunk, function, next_chunk))
            yield from results


def _chunked(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
