"""Cooperative cancellation of a build, a push or a read: a token that long-running work checks
between chunks, and that a signal handler, the workbench or a failed sibling layer cancels."""

from __future__ import annotations

import threading

from engine.errors import BuildCancelled


class CancelToken:
    """Cooperative cancellation: jobs check it between chunks. A child token is cancelled
    with its parent, or on its own (one failed layer stops its siblings, not the caller)."""

    def __init__(self, parent: CancelToken | None = None) -> None:
        self._event = threading.Event()
        self._parent = parent

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or (self._parent is not None and self._parent.cancelled)

    def check(self) -> None:
        if self.cancelled:
            raise BuildCancelled("build cancelled")
