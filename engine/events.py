"""Typed build events: the one stream every consumer (CLI, workbench, tests) reads.

Events are frozen values, emitted from worker threads into a single sink (a callable). Layers
are identified by their index in the spec's `layers` list; an import layer node that yields
several image layers reports them under the same index.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.oci.descriptor import Descriptor
from engine.oci.digest import Digest


@dataclass(frozen=True)
class BuildStarted:
    spec_path: str
    layer_count: int
    jobs: int
    codec: str


@dataclass(frozen=True)
class LayerQueued:
    index: int
    label: str


@dataclass(frozen=True)
class LayerStarted:
    index: int
    label: str


@dataclass(frozen=True)
class LayerProgress:
    """Bytes done of a phase: 'hashing' (reading sources for the cache key), 'building'
    (tar + compression), 'fetching' (imports) or 'pushing'."""

    index: int
    phase: str
    done: int
    total: int


@dataclass(frozen=True)
class LayerCached:
    """The layer's cache key was found: nothing is rebuilt."""

    index: int
    key: str
    descriptors: tuple[Descriptor, ...]


@dataclass(frozen=True)
class LayerDone:
    index: int
    descriptors: tuple[Descriptor, ...]
    diff_ids: tuple[Digest, ...]
    cache_hit: bool
    seconds: float


@dataclass(frozen=True)
class LayerFailed:
    index: int
    error: str


@dataclass(frozen=True)
class ImageAssembled:
    manifest: Descriptor
    config: Descriptor


@dataclass(frozen=True)
class BuildFinished:
    manifest_digest: Digest
    seconds: float
    layers: int
    cached: int


@dataclass(frozen=True)
class BuildFailed:
    error: str
    cancelled: bool


@dataclass(frozen=True)
class OutputWritten:
    target: str


@dataclass(frozen=True)
class OutputWaiting:
    """Another writer holds the output (`target`): the build waits for it to finish."""

    target: str


@dataclass(frozen=True)
class PushStarted:
    """A push of `blobs` blobs (`bytes` in all) to `target` (registry/repository) begins."""

    target: str
    blobs: int
    bytes: int


@dataclass(frozen=True)
class BlobPushed:
    """A blob was uploaded. `index` is its spec layer, or -1 for the config."""

    digest: Digest
    size: int
    index: int


@dataclass(frozen=True)
class BlobMounted:
    """The registry already held the blob in `source` (same registry) and linked it."""

    digest: Digest
    size: int
    index: int
    source: str


@dataclass(frozen=True)
class BlobSkipped:
    """The target repository already had the blob: nothing sent."""

    digest: Digest
    size: int
    index: int


@dataclass(frozen=True)
class PushFinished:
    """The manifest is in place under every tag; `bytes_sent` counts blob bytes uploaded."""

    target: str
    digest: Digest
    tags: tuple[str, ...]
    bytes_sent: int
    seconds: float


@dataclass(frozen=True)
class Log:
    """A line of build log that is not tied to a layer state change."""

    level: str
    message: str


Event = (
    BuildStarted
    | LayerQueued
    | LayerStarted
    | LayerProgress
    | LayerCached
    | LayerDone
    | LayerFailed
    | ImageAssembled
    | BuildFinished
    | BuildFailed
    | OutputWritten
    | OutputWaiting
    | PushStarted
    | BlobPushed
    | BlobMounted
    | BlobSkipped
    | PushFinished
    | Log
)
EventSink = Callable[[Event], None]


def discard(_event: Event) -> None:
    """A sink that drops every event."""


class ProgressThrottle:
    """Rate-limits LayerProgress at the source: at most one event per interval per layer,
    plus the final one, so a multi-GB layer does not flood the consumers."""

    def __init__(self, sink: EventSink, index: int, phase: str, total: int, interval: float = 0.1):
        self._sink = sink
        self._index = index
        self._phase = phase
        self._total = total
        self._interval = interval
        self._last = 0.0
        self._reached = False
        self.done = 0

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        # The total may be an estimate (engine/builder/layer.py): reaching it sends one event,
        # not one per write from then on.
        reached = self.done >= self._total and not self._reached
        if reached or now - self._last >= self._interval:
            self._reached = self._reached or reached
            self._last = now
            self._sink(LayerProgress(self._index, self._phase, self.done, self._total))
