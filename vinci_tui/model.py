"""The state of one build as the Layers pane shows it, derived from engine events alone.

Pure and Textual-free: `BuildModel.apply(event)` folds an event in and says which rows
changed, so the pane repaints only those, and tests can check the states without a screen.

Layer states: queued -> hashing -> building -> compressing -> done, or -> cached on a cache hit,
or failed / cancelled. "compressing" is the end of the one-pass tar+compress write: every tar
byte is in and the compressor is flushing its last blocks.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

from engine.events import (
    BlobMounted,
    BlobPushed,
    BlobSkipped,
    BuildFailed,
    BuildFinished,
    BuildStarted,
    Event,
    ImageAssembled,
    LayerCached,
    LayerDone,
    LayerFailed,
    LayerProgress,
    LayerQueued,
    LayerStarted,
    Log,
    OutputWritten,
    PushFinished,
    PushStarted,
)
from engine.humanize import human_bytes
from engine.oci.digest import Digest
from vinci_tui.clock import Clock, format_eta, format_seconds

FINAL_STATES = frozenset({"done", "cached", "failed", "cancelled"})


@dataclass
class LayerRow:
    index: int
    label: str
    state: str = "queued"
    phase: str = ""
    done: int = 0
    total: int = 0
    phase_started: float | None = None
    rate: float | None = None  # bytes per second in the current phase, None if unknown
    size: int | None = None  # compressed size of the layer's blobs
    digest: Digest | None = None
    seconds: float | None = None
    cache_hit: bool | None = None
    error: str = ""
    settled: str = ""  # the final state of the build, for after a push

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def eta(self) -> float | None:
        """Seconds left in the current phase at the current rate; None if unknown."""
        if self.finished or not self.total or not self.rate:
            return None
        return max(0.0, (self.total - self.done) / self.rate)

    @property
    def fraction(self) -> float | None:
        if self.finished:
            return 1.0 if self.state in ("done", "cached") else None
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


@dataclass
class BuildModel:
    """One build's progress. A new build gets a new model."""

    clock: Clock = field(default_factory=Clock)
    rows: dict[int, LayerRow] = field(default_factory=dict)
    status: str = "idle"  # idle | building | built | failed | cancelled
    manifest: Digest | None = None
    config: Digest | None = None
    seconds: float | None = None
    cached: int = 0
    error: str = ""
    codec: str = ""

    def seed(self, count: int) -> None:
        """A queued row for each of `count` layers, before their LayerQueued events arrive."""
        for index in range(count):
            self.rows.setdefault(index, LayerRow(index, ""))

    def apply(self, event: Event) -> set[int]:
        """Fold `event` in; return the indexes of the rows it changed."""
        if isinstance(event, BuildStarted):
            self.status = "building"
            self.codec = event.codec
            return set()
        if isinstance(event, LayerQueued):
            self.rows[event.index] = LayerRow(event.index, event.label)
            return {event.index}
        if isinstance(event, ImageAssembled):
            self.manifest = event.manifest.digest
            self.config = event.config.digest
            return set()
        if isinstance(event, BuildFinished):
            self.status = "built"
            self.manifest = event.manifest_digest
            self.seconds = event.seconds
            self.cached = event.cached
            return set()
        if isinstance(event, BuildFailed):
            self.status = "cancelled" if event.cancelled else "failed"
            self.error = event.error
            changed = set()
            for each in self.rows.values():
                if not each.finished:
                    each.state = "cancelled" if event.cancelled else "failed"
                    changed.add(each.index)
            return changed
        if not isinstance(
            event, LayerStarted | LayerProgress | LayerCached | LayerDone | LayerFailed
        ):
            return set()  # push events and logs change no row
        row = self.rows.get(event.index)
        if row is None:
            return set()  # not a layer of this build (a push reports the config as -1)
        self._apply_layer(row, event)
        return {event.index}

    def _apply_layer(self, row: LayerRow, event: Event) -> None:
        if isinstance(event, LayerStarted):
            # Planning comes first: stat'ing (and, where the memo misses, hashing) the inputs.
            row.state = "hashing"
        elif isinstance(event, LayerProgress):
            now = self.clock.monotonic()
            if event.phase != row.phase:
                row.phase = event.phase
                row.phase_started = now
            row.done, row.total = event.done, event.total
            elapsed = now - (row.phase_started if row.phase_started is not None else now)
            row.rate = event.done / elapsed if elapsed > 0 else None
            state = event.phase
            if event.phase == "building" and event.total and event.done >= event.total:
                state = "compressing"
            row.state = state
        elif isinstance(event, LayerCached):
            row.state = row.settled = "cached"
            row.cache_hit = True
            row.size = sum(d.size for d in event.descriptors)
            row.digest = event.descriptors[0].digest if event.descriptors else None
        elif isinstance(event, LayerDone):
            row.state = row.settled = "cached" if event.cache_hit else "done"
            row.cache_hit = event.cache_hit
            row.size = sum(d.size for d in event.descriptors)
            row.digest = event.descriptors[0].digest if event.descriptors else None
            row.seconds = event.seconds
            row.rate = None
        elif isinstance(event, LayerFailed):
            row.state = "cancelled" if event.error == "cancelled" else "failed"
            row.error = event.error

    def settle(self) -> set[int]:
        """Put rows a push moved (state "pushing") back to their build's final state."""
        changed = set()
        for row in self.rows.values():
            if row.settled and row.state != row.settled:
                row.state, row.phase, row.rate = row.settled, "", None
                changed.add(row.index)
        return changed

    @property
    def finished_layers(self) -> int:
        return sum(1 for r in self.rows.values() if r.finished)

    @property
    def eta(self) -> float | None:
        """Seconds until the running layers are through their current phase: the slowest
        one's, since they run side by side. None while none has a rate yet."""
        times = [r.eta for r in self.rows.values() if r.eta is not None]
        return max(times) if times else None

    def title(self) -> str:
        """Where the build is: 'building 3/7, ~9s left', 'built in 1.2 s, 5/7 cached', …"""
        total = len(self.rows)
        pushing = [r for r in self.rows.values() if r.state == "pushing"]
        if pushing and self.status == "built":
            eta = self.eta
            left = f", ~{format_eta(eta)} left" if eta is not None else ""
            return f"pushing {len(pushing)} layer{'s' if len(pushing) != 1 else ''}{left}"
        if self.status == "building":
            eta = self.eta
            left = f", ~{format_eta(eta)} left" if eta is not None else ""
            return f"building {self.finished_layers}/{total}{left}"
        if self.status == "built":
            seconds = format_seconds(self.clock.seconds(self.seconds or 0.0))
            return f"built in {seconds}, {self.cached}/{total} cached"
        if self.status == "cancelled":
            return "cancelled"
        if self.status == "failed":
            first = self.error.splitlines()[0] if self.error else "unknown error"
            return f"failed: {first}"
        return "not built yet"


def describe(model: BuildModel, event: Event, new_phase: bool) -> tuple[str, str] | None:
    """The log line (level, text) for `event`; progress once per phase, when it starts.

    `model` gives layers their labels; `new_phase` says this progress event is the first of
    its phase for its layer that reached the UI. Which later ones do depends on timing
    (progress is coalesced), so they are not logged: the log reads the same on every run.
    """

    def label(index: int) -> str:
        row = model.rows.get(index)
        return row.label if row is not None and row.label else f"layer {index}"

    clock = model.clock
    if isinstance(event, BuildStarted):
        return "event", (
            f"build started: {event.spec_path}, {event.layer_count} layers, "
            f"{event.jobs} job{'s' if event.jobs != 1 else ''}, codec {event.codec}"
        )
    if isinstance(event, LayerQueued):
        return "event", f"{event.label}: queued"
    if isinstance(event, LayerStarted):
        return "event", f"{event.label}: started"
    if isinstance(event, LayerProgress):
        if not new_phase:
            return None
        return "event", f"{label(event.index)}: {event.phase} {human_bytes(event.total)}"
    if isinstance(event, LayerCached):
        digest = event.descriptors[0].digest.short if event.descriptors else "-"
        return "event", f"{label(event.index)}: cache hit, key {event.key[:12]} -> {digest}"
    if isinstance(event, LayerDone):
        digest = event.descriptors[0].digest.short if event.descriptors else "-"
        size = human_bytes(sum(d.size for d in event.descriptors))
        seconds = format_seconds(clock.seconds(event.seconds))
        how = "cache hit" if event.cache_hit else "built"
        return "event", f"{label(event.index)}: done, {digest} {size} in {seconds} ({how})"
    if isinstance(event, LayerFailed):
        level = "warning" if event.error == "cancelled" else "error"
        return level, f"{label(event.index)}: {event.error}"
    if isinstance(event, ImageAssembled):
        return "event", f"image assembled: manifest {event.manifest.digest}"
    if isinstance(event, BuildFinished):
        seconds = format_seconds(clock.seconds(event.seconds))
        return "event", (
            f"build finished in {seconds}: {event.cached}/{event.layers} layers cached, "
            f"manifest {event.manifest_digest}"
        )
    if isinstance(event, BuildFailed):
        if event.cancelled:
            return "warning", "build cancelled"
        return "error", f"build failed: {event.error}"
    if isinstance(event, OutputWritten):
        return "event", f"wrote {event.target}"
    if isinstance(event, Log):
        return event.level, event.message
    if isinstance(event, PushStarted):
        return "info", f"push to {event.target}: {event.blobs} blobs, {human_bytes(event.bytes)}"
    if isinstance(event, BlobPushed | BlobMounted | BlobSkipped):
        what = "config" if event.index < 0 else label(event.index)
        size = human_bytes(event.size)
        if isinstance(event, BlobPushed):
            return "event", f"{what}: sent {event.digest.short} ({size})"
        if isinstance(event, BlobMounted):
            return "event", f"{what}: mounted {event.digest.short} from {event.source}"
        return "event", f"{what}: already in the registry ({event.digest.short}, {size})"
    if isinstance(event, PushFinished):
        tags = ", ".join(event.tags) or "(no tag)"
        at = time.strftime("%H:%M:%S", time.localtime(clock.wall()))
        seconds = format_seconds(clock.seconds(event.seconds))
        return "info", (
            f"pushed to {event.target} ({tags}) at {at} "
            f"({human_bytes(event.bytes_sent)} sent in {seconds}), manifest {event.digest.short}"
        )
    # Events this workbench does not know yet (the engine grows): still logged, generically.
    return "event", _generic(event)


def _generic(event: object) -> str:
    """'PushFinished: target=…, digest=…' for any event dataclass."""
    if not dataclasses.is_dataclass(event):
        return repr(event)
    values = ", ".join(f"{f.name}={getattr(event, f.name)}" for f in dataclasses.fields(event))
    return f"{type(event).__name__}: {values}"
