"""Blocks compressed on worker threads, written out in their order by the calling thread.

Shared by the piece codecs (gzip, gzip-isal): each piece's output is a function of the piece
(and, for gzip-isal, of the piece before it), never of which thread made it or when, so the
thread count changes speed and memory only.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")


class OrderedPool(Generic[T]):
    """Runs `work` on up to `threads` threads (one thread: the caller's own, no pool, so
    `--jobs 1` keeps a build on one thread) and hands the results to `emit` in submission
    order. At most 2 * threads pieces are in flight, which bounds memory."""

    def __init__(self, threads: int, work: Callable[..., T], emit: Callable[[T], None]) -> None:
        self._work = work
        self._emit = emit
        self._pool = (
            ThreadPoolExecutor(threads, thread_name_prefix="vinci-codec") if threads > 1 else None
        )
        self._pending: collections.deque[Future[T]] = collections.deque()
        self._limit = 2 * max(1, threads)

    def submit(self, *args: object) -> None:
        if self._pool is None:
            self._emit(self._work(*args))
            return
        self._pending.append(self._pool.submit(self._work, *args))
        while len(self._pending) > self._limit:
            self._emit(self._pending.popleft().result())

    def finish(self) -> None:
        """Emits what is still in flight and stops the threads (also after an error)."""
        try:
            while self._pending:
                self._emit(self._pending.popleft().result())
        finally:
            for future in self._pending:
                future.cancel()
            self._pending.clear()
            if self._pool is not None:
                self._pool.shutdown(wait=True)
