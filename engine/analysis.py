"""What each layer does to the image, the questions dive answers: per layer the files it adds,
modifies and removes relative to the layers below; the merged image (the union after whiteouts
and shadowing); the bytes that later layers shadow or remove, each naming the layer that does
it; an efficiency figure and the largest files.

    [(LayerInfo, [FileEntry])] --analyze_layers--> ImageAnalysis
    BuildResult | opened image  --analyze_result / analyze_image--> ImageAnalysis

Only per-entry metadata is held (engine.inspection.FileEntry, from a layer's plan or streamed
from its blob by engine.tar.read), never file contents: one entry per path of each layer.

The rules are an unpacker's (OCI image spec, "Applying changesets"): a layer's whiteouts
(`.wh.NAME`) and opaque whiteouts (`.wh..wh..opq`) apply to the layers below only; then each
entry replaces what is at its path, and a non-directory replaces a directory with everything
under it. A directory over a directory keeps what is below.

Efficiency is dive's: 1 - wasted / total, where total is the bytes of every regular file of
every layer and wasted the bytes the merged image does not hold (shadowed by a later entry at
the same path, or removed by a whiteout).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from engine.builder.result import BuildResult
from engine.cancel import CancelToken
from engine.inspection import (
    OPAQUE_WHITEOUT,
    WHITEOUT_PREFIX,
    BlobSource,
    FileEntry,
    ImageInfo,
    LayerInfo,
    PathTree,
    image_from_result,
    layer_entries,
    plan_for,
)

ADDED = "added"
MODIFIED = "modified"
REMOVED = "removed"
SHADOWED = "shadowed"  # Shadowed.how: a later entry at the same path (or above it)


@dataclass(frozen=True)
class Shadowed:
    """Bytes of `layer` that the image does not hold: `by` (a later layer, or the same one
    for a path written twice) wrote over them (`how` = "shadowed") or removed them
    ("removed")."""

    path: str
    size: int
    layer: int  # image layer position of the hidden copy
    by: int  # image layer position of the layer that hides it
    how: str  # shadowed | removed
    entry: FileEntry  # the hidden copy

    def to_json(self, labels: Sequence[str]) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "layer": self.layer,
            "by": self.by,
            "by_label": labels[self.by] or None,
            "how": self.how,
        }


@dataclass(frozen=True)
class LayerReport:
    """One image layer: its entries, each marked added / modified / removed ("" when it
    changes nothing, e.g. a directory restated as it was), and its bytes that later layers
    hide."""

    info: LayerInfo
    entries: tuple[FileEntry, ...]
    added: int
    modified: int
    removed: int
    file_bytes: int  # regular-file bytes this layer holds
    shadowed: tuple[Shadowed, ...]  # this layer's bytes hidden by later layers (or itself)
    removes_bytes: int  # bytes of the layers below that this layer hides

    @property
    def label(self) -> str:
        return layer_label(self.info)

    @property
    def shadowed_bytes(self) -> int:
        return sum(s.size for s in self.shadowed)

    def to_json(self, labels: Sequence[str]) -> dict[str, Any]:
        return {
            "position": self.info.position,
            "label": self.info.label or None,
            "added": self.added,
            "modified": self.modified,
            "removed": self.removed,
            "file_bytes": self.file_bytes,
            "shadowed_bytes": self.shadowed_bytes,
            "removes_bytes": self.removes_bytes,
            "shadowed": [s.to_json(labels) for s in self.shadowed],
        }


@dataclass(frozen=True)
class ImageAnalysis:
    layers: tuple[LayerReport, ...]
    merged: tuple[FileEntry, ...]  # what a container sees, sorted by path; `layer` set
    total_bytes: int  # regular-file bytes over every layer
    wasted_bytes: int  # shadowed + removed

    @property
    def efficiency(self) -> float:
        """1 - wasted/total, as dive; 1.0 for an image with no file bytes."""
        return 1.0 - self.wasted_bytes / self.total_bytes if self.total_bytes else 1.0

    @property
    def image_bytes(self) -> int:
        return self.total_bytes - self.wasted_bytes

    @property
    def shadowed(self) -> tuple[Shadowed, ...]:
        """Every hidden copy, the largest first."""
        every = [s for layer in self.layers for s in layer.shadowed]
        return tuple(sorted(every, key=lambda s: (-s.size, s.path, s.layer)))

    def largest(self, count: int = 100) -> list[FileEntry]:
        """The largest regular files of the merged image, the largest first."""
        files = [e for e in self.merged if e.type == "file"]
        return sorted(files, key=lambda e: (-e.size, e.path))[:count]

    def labels(self) -> list[str]:
        return [layer.label for layer in self.layers]

    def to_json(self, largest: int = 20) -> dict[str, Any]:
        labels = self.labels()
        return {
            "total_bytes": self.total_bytes,
            "wasted_bytes": self.wasted_bytes,
            "efficiency": round(self.efficiency, 6),
            "files": sum(1 for e in self.merged if e.type == "file"),
            "layers": [layer.to_json(labels) for layer in self.layers],
            "largest": [
                {"path": e.path, "size": e.size, "layer": e.layer, "label": labels[e.layer]}
                for e in self.largest(largest)
            ],
        }


def layer_label(info: LayerInfo) -> str:
    """How a layer is named beside a file: its spec node ("layers[1].directory"), else its
    position ("image layer 3")."""
    return info.label or f"image layer {info.position}"


def origin_text(entry: FileEntry, strip: str = "") -> str:
    """The origin column: the spec node and the host path it read,
    "layers[1].directory ← ./site/a.txt"; `strip` ("layers[1].") is left out when the
    heading already names the layer."""
    origin = entry.origin.removeprefix(strip) if strip else entry.origin
    if entry.source:
        return f"{origin} ← {entry.source}" if origin else entry.source
    return origin


# -- the analysis --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Held:
    entry: FileEntry
    layer: int


def _same(a: FileEntry, b: FileEntry) -> bool:
    """Whether `b` leaves `a` as it was: same type and metadata and, for a file, the same
    content as far as digests tell (none known: a file written again counts as modified)."""
    if (a.type, a.mode, a.uid, a.gid, a.target) != (b.type, b.mode, b.uid, b.gid, b.target):
        return False
    if a.type != "file":
        return True
    return bool(a.digest) and a.digest == b.digest and a.size == b.size


def analyze_layers(layers: Iterable[tuple[LayerInfo, Sequence[FileEntry]]]) -> ImageAnalysis:
    """Applies each layer's entries in order and says what each one does."""
    state: PathTree[_Held] = PathTree()
    reports: list[LayerReport] = []
    hidden: dict[int, list[Shadowed]] = {}
    removes: dict[int, int] = {}
    total = 0
    for info, entries in layers:
        pos = info.position
        hidden.setdefault(pos, [])
        removes[pos] = 0
        whiteouts: list[FileEntry] = []
        opaques: list[FileEntry] = []
        written: dict[str, FileEntry] = {}
        for e in entries:
            parent, base = posixpath.split(e.path)
            if e.type == "opaque" or base == OPAQUE_WHITEOUT:
                opaques.append(e)
            elif e.type == "whiteout" or base.startswith(WHITEOUT_PREFIX):
                whiteouts.append(e)
            else:
                if e.type == "file":
                    total += e.size
                before = written.get(e.path)
                if before is not None and before.type == "file" and before.size:
                    # Written twice in one layer: the first copy is in the blob, unseen.
                    hidden[pos].append(Shadowed(e.path, before.size, pos, pos, SHADOWED, before))
                written[e.path] = e
        marked: list[FileEntry] = []

        def hide(gone: list[_Held], how: str, by: int = pos) -> int:
            freed = 0
            for held in gone:
                size = held.entry.size if held.entry.type == "file" else 0
                if size:
                    hidden[held.layer].append(
                        Shadowed(held.entry.path, size, held.layer, by, how, held.entry)
                    )
                    freed += size
            removes[by] += freed
            return freed

        for w in whiteouts:
            parent, base = posixpath.split(w.path)
            target = posixpath.join(parent, base[len(WHITEOUT_PREFIX) :])
            at = state.values.get(target)
            hide(state.remove(target, itself=True), REMOVED)
            if at is not None:
                # The removed path as it was, so its kind and size show.
                shown = replace(at.entry, origin=w.origin, source="", change=REMOVED, layer=pos)
            else:
                shown = replace(w, path=target, change=REMOVED, layer=pos)
            marked.append(shown)
        for o in opaques:
            directory = posixpath.dirname(o.path)
            gone = state.remove(directory, itself=False)
            hide(gone, REMOVED)
            marked.append(replace(o, change=REMOVED if gone else "", layer=pos))
        for path, e in written.items():
            at = state.values.get(path)
            # A non-directory replaces whatever is there (a directory with all below it);
            # a directory replaces only a non-directory.
            if e.type != "dir" or (at is not None and at.entry.type != "dir"):
                hide(state.remove(path, itself=True), SHADOWED)
            change = ADDED if at is None else ("" if _same(at.entry, e) else MODIFIED)
            shown = replace(e, change=change, layer=pos, origin=e.origin or layer_label(info))
            state.put(path, _Held(shown, pos))
            marked.append(shown)
        reports.append(
            LayerReport(
                info=info,
                entries=tuple(marked),
                added=sum(1 for e in marked if e.change == ADDED),
                modified=sum(1 for e in marked if e.change == MODIFIED),
                removed=sum(1 for e in marked if e.change == REMOVED),
                file_bytes=sum(e.size for e in written.values() if e.type == "file"),
                shadowed=(),
                removes_bytes=0,
            )
        )
    reports = [
        replace(
            r,
            shadowed=tuple(sorted(hidden[r.info.position], key=lambda s: (-s.size, s.path))),
            removes_bytes=removes[r.info.position],
        )
        for r in reports
    ]
    merged = tuple(
        replace(h.entry, change="") for _p, h in sorted(state.values.items(), key=lambda i: i[0])
    )
    wasted = sum(s.size for r in reports for s in r.shadowed)
    return ImageAnalysis(tuple(reports), merged, total, wasted)


def analyze_result(
    result: BuildResult,
    blobs: BlobSource,
    cancel: CancelToken | None = None,
    known: dict[str, list[FileEntry]] | None = None,
) -> ImageAnalysis:
    """The analysis of a build: built layers from their plans (no blob is read), imported ones
    streamed from their blobs. `known` (layer digest -> entries) keeps what blobs gave
    between calls, so a rebuild does not read an unchanged import again."""
    image = image_from_result(result)
    base = str(result.spec.base_dir)
    memo = known if known is not None else {}

    def entries(info: LayerInfo) -> list[FileEntry]:
        if cancel is not None:
            cancel.check()  # between layers: a rebuild supersedes this analysis
        plan = plan_for(result, info)
        if plan is not None:
            return layer_entries(blobs, info, plan, cancel, base=base)
        digest = str(info.descriptor.digest)
        if digest not in memo:
            memo[digest] = layer_entries(blobs, info, None, cancel)
        return memo[digest]

    return analyze_layers((info, entries(info)) for info in image.layers)


def analyze_image(
    image: ImageInfo, blobs: BlobSource, cancel: CancelToken | None = None
) -> ImageAnalysis:
    """The analysis of an image vinci did not build (a layout, an archive, a registry image):
    every layer streamed from its blob."""
    return analyze_layers((info, layer_entries(blobs, info, None, cancel)) for info in image.layers)
