"""The values a diff produces: why two images differ, from the manifest down to one tar header.

    ImageDiff
    ├── fields: FieldChange          manifest and config fields (entrypoint, env, labels, created…)
    └── layers: LayerChange          added | removed | changed | recompressed | retyped |
        │                            unchanged
        ├── compression: Cause       for a recompressed layer: media type, codec, size
        ├── notes                    tar-level facts no single file explains (entry order…)
        └── files: FileChange        added | removed | changed, each with its Causes (and,
                                     for a text file asked for, a unified diff)

Every value is frozen and has a `to_json()`; the text form lives in render.py. `headline()`
gives the short "what changed and why" lines the workbench shows after a rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.oci.image import ImageRef

# Cause names, in the order they are reported. Stable: tests and --json consumers match them.
TYPE = "type"
CONTENT = "content"
MODE = "mode"
OWNER = "owner"
OWNER_NAMES = "owner names"
MTIME = "mtime"
LINK_TARGET = "link target"
DEVICE = "device"
EXTENDED = "pax records"
HEADER_FORMAT = "header format"
HEADER_ENCODING = "header encoding"
MEDIA_TYPE = "media type"
CODEC = "codec"
CODEC_OUTPUT = "codec output"  # same codec identity, different bytes: not deterministic
COMPRESSED_BYTES = "compressed bytes"


@dataclass(frozen=True)
class Cause:
    """One attribute that differs, with its value on each side, already formatted."""

    what: str
    before: str
    after: str

    def to_json(self) -> dict[str, str]:
        return {"cause": self.what, "before": self.before, "after": self.after}

    def __str__(self) -> str:
        return f"{self.what} {self.before} -> {self.after}"


@dataclass(frozen=True)
class FileChange:
    """One path inside a layer. `entry` describes the entry on the side that has it (for
    added/removed) or on side B (for changed)."""

    path: str  # "/etc/motd"
    change: str  # added | removed | changed
    causes: tuple[Cause, ...]
    entry: str
    # A unified diff of a changed text file's contents (asked for by path; short), else ().
    text_diff: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "change": self.change,
            "causes": [c.to_json() for c in self.causes],
            "entry": self.entry,
        }
        if self.text_diff:
            out["text_diff"] = list(self.text_diff)
        return out


@dataclass(frozen=True)
class LayerSide:
    """A layer as one image lists it."""

    position: int
    digest: str
    diff_id: str
    size: int
    media_type: str
    created_by: str  # from the config's history, "" if none
    codec: str  # the codec identity when known (a spec build), else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "digest": self.digest,
            "diff_id": self.diff_id,
            "size": self.size,
            "media_type": self.media_type,
            "created_by": self.created_by,
            "codec": self.codec or None,
        }


@dataclass(frozen=True)
class LayerChange:
    change: str  # added | removed | changed | recompressed | unchanged
    a: LayerSide | None
    b: LayerSide | None
    files: tuple[FileChange, ...] = ()
    notes: tuple[str, ...] = ()
    compression: tuple[Cause, ...] = ()

    @property
    def label(self) -> str:
        side = self.b or self.a
        assert side is not None
        if self.a is not None and self.b is not None and self.a.position != self.b.position:
            return f"layer {self.a.position}->{self.b.position}"
        return f"layer {side.position}"

    def to_json(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "a": self.a.to_json() if self.a else None,
            "b": self.b.to_json() if self.b else None,
            "files": [f.to_json() for f in self.files],
            "notes": list(self.notes),
            "compression": [c.to_json() for c in self.compression],
        }


@dataclass(frozen=True)
class FieldChange:
    """A manifest or config field. `field` is a path like `config.Env.PATH` or
    `config.Labels["org.opencontainers.image.title"]`; values are JSON values."""

    document: str  # manifest | config
    field: str
    change: str  # added | removed | changed
    before: Any
    after: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "document": self.document,
            "field": self.field,
            "change": self.change,
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True)
class ImageDiff:
    a: ImageRef
    b: ImageRef
    fields: tuple[FieldChange, ...]
    layers: tuple[LayerChange, ...]

    @property
    def identical(self) -> bool:
        if self.a.manifest and self.a.manifest == self.b.manifest:
            return True
        return not self.fields and all(x.change == "unchanged" for x in self.layers)

    def headline(self) -> list[str]:
        """One line per difference, most significant first: what a rebuild changed and why."""
        lines: list[str] = []
        layers_changed = any(x.change != "unchanged" for x in self.layers)
        for f in self.fields:
            if layers_changed and f.field.startswith("history["):
                continue  # a consequence of the layer changes listed below
            lines.append(f"{f.document} {f.field} {f.change}")
        for layer in self.layers:
            if layer.change == "unchanged":
                continue
            if layer.change in ("added", "removed"):
                side = layer.b if layer.change == "added" else layer.a
                assert side is not None
                what = f" ({side.created_by})" if side.created_by else ""
                lines.append(f"{layer.label} {layer.change}{what}")
            elif layer.change == "recompressed":
                causes = ", ".join(c.what for c in layer.compression) or "compressed bytes"
                lines.append(f"{layer.label} recompressed (same diff_id): {causes}")
            else:
                parts = [
                    f"{f.path} {f.change}"
                    + (f" ({', '.join(c.what for c in f.causes)})" if f.causes else "")
                    for f in layer.files
                ]
                parts.extend(layer.notes)
                lines.append(f"{layer.label} changed: " + "; ".join(parts[:5]))
                if len(parts) > 5:
                    lines[-1] += f"; and {len(parts) - 5} more"
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "a": self.a.to_json(),
            "b": self.b.to_json(),
            "fields": [f.to_json() for f in self.fields],
            "layers": [x.to_json() for x in self.layers],
            "summary": self.headline(),
        }
