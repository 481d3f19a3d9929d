"""How the command line shows a build: live per-layer progress on a terminal (one line per layer,
redrawn in place on stderr), else only warnings and waits, one line each."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import TextIO

from engine.events import (
    BuildFinished,
    Event,
    EventSink,
    LayerCached,
    LayerDone,
    LayerFailed,
    LayerProgress,
    LayerQueued,
    LayerStarted,
    Log,
    OutputWaiting,
)
from engine.humanize import human_bytes


class TerminalProgress:
    """An event sink that draws a live table; call `finish()` once the build ends."""

    def __init__(self, stream: TextIO = sys.stderr, interval: float = 0.1) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._labels: dict[int, str] = {}
        self._state: dict[int, str] = {}
        self._started: dict[int, float] = {}
        self._drawn = 0
        self._last = 0.0
        self._interval = interval
        self._logs: list[str] = []

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, LayerQueued):
                self._labels[event.index] = event.label
                self._state[event.index] = "queued"
            elif isinstance(event, LayerStarted):
                self._started[event.index] = time.monotonic()
                self._state[event.index] = "started"
            elif isinstance(event, LayerProgress):
                pct = 100 * event.done / event.total if event.total else 100
                elapsed = time.monotonic() - self._started.get(event.index, time.monotonic())
                rate = event.done / elapsed if elapsed > 0 else 0
                filled = int(pct / 5)
                self._state[event.index] = (
                    f"{event.phase:9} [{'#' * filled}{'.' * (20 - filled)}] "
                    f"{human_bytes(event.done)}/{human_bytes(event.total)} {human_bytes(rate)}/s"
                )
            elif isinstance(event, LayerCached):
                self._state[event.index] = f"cached    {event.descriptors[0].digest.short}"
            elif isinstance(event, LayerDone):
                how = "cached" if event.cache_hit else "done"
                self._state[event.index] = (
                    f"{how:9} {event.descriptors[0].digest.short if event.descriptors else ''} "
                    f"{human_bytes(sum(d.size for d in event.descriptors))} {event.seconds:.2f}s"
                )
            elif isinstance(event, LayerFailed):
                self._state[event.index] = f"failed    {event.error.splitlines()[0]}"
            elif isinstance(event, Log):
                self._logs.append(f"{event.level}: {event.message}")
            force = not isinstance(event, LayerProgress) or isinstance(event, BuildFinished)
            now = time.monotonic()
            if force or now - self._last >= self._interval:
                self._last = now
                self._draw()

    def _draw(self) -> None:
        out = []
        if self._drawn:
            out.append(f"\x1b[{self._drawn}F")
        for line in self._logs:
            out.append(f"\x1b[2K{line}\n")
        self._logs.clear()
        width = max((len(label) for label in self._labels.values()), default=0)
        for i in sorted(self._labels):
            out.append(f"\x1b[2K{self._labels[i]:<{width}}  {self._state.get(i, '')}\n")
        self._drawn = len(self._labels)
        self._stream.write("".join(out))
        self._stream.flush()

    def finish(self) -> None:
        with self._lock:
            self._draw()


def warnings_only(event: Event) -> None:
    """An event sink that prints warnings and nothing else."""
    if isinstance(event, Log) and event.level == "warning":
        print(f"vinci: warning: {event.message}", file=sys.stderr)


class Progress:
    """A live display on a terminal; otherwise only warnings, one line each on stderr (a
    lock the build could not honour, say, must not pass unsaid). A wait for another writer
    of the output is said on stderr in any case, once. `finish` ends it."""

    def __init__(self, args: argparse.Namespace) -> None:
        live = not (getattr(args, "quiet", False) or getattr(args, "json", False))
        self.display = TerminalProgress() if live and sys.stderr.isatty() else None
        shown: EventSink = self.display if self.display is not None else warnings_only

        def sink(event: Event) -> None:
            if isinstance(event, OutputWaiting):
                line = f"waiting for another build writing {event.target} to finish"
                if self.display is not None:
                    self.display(Log("vinci", line))
                else:
                    # One write: builds sharing a stderr must not split each other's lines.
                    sys.stderr.write(f"vinci: {line}\n")
                    sys.stderr.flush()
                return
            shown(event)

        self.sink: EventSink = sink

    @property
    def live(self) -> bool:
        return self.display is not None

    def finish(self) -> None:
        if self.display is not None:
            self.display.finish()
