"""Explains why two images differ, from the top down.

1. Manifest and config fields, as paths (`config.Env.PATH`, `config.Labels["k"]`, `created`).
   The config's `rootfs.diff_ids` is left to the layer comparison, and identical changes to
   every history entry (a new SOURCE_DATE_EPOCH moves them all) are reported once, as
   `history[*].created`.
2. Layers, aligned by diff_id (longest common subsequence): a layer both images hold with the
   same diff_id is unchanged, or, with another digest, recompressed: the same tar bytes through
   another codec or codec version. Unmatched runs are paired by their history line first, then
   in order; what is left over was added or removed.
3. Inside each changed pair, every file (layers.py), streaming both blobs; for the text files
   a caller names (the workbench names inline `contents`), a short unified diff of the two.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

from engine.cancel import CancelToken
from engine.compare.layers import compare_entries, describe
from engine.compare.model import (
    CODEC,
    CODEC_OUTPUT,
    COMPRESSED_BYTES,
    CONTENT,
    MEDIA_TYPE,
    Cause,
    FieldChange,
    FileChange,
    ImageDiff,
    LayerChange,
    LayerSide,
)
from engine.errors import LayerReadError
from engine.oci.image import Image, Layer
from engine.tar.compression import sniff_compression
from engine.tar.read import FileContent, TarEntry, TarSummary, read_layer, read_members

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HISTORY = re.compile(r"^history\[\d+\]")
# Manifest fields the layer and config sections explain better (the config descriptor's digest
# changes whenever any config field does).
_MANIFEST_SKIP = {"layers", "config.digest", "config.size"}
_CONFIG_SKIP = {"rootfs.diff_ids"}
TEXT_DIFF_LIMIT = 64 * 1024  # a text file larger than this on either side gets no diff
TEXT_DIFF_LINES = 16  # at most this many lines of a diff are kept, the rest counted


def _join(path: str, key: str) -> str:
    part = key if _NAME.match(key) else f"[{key!r}]".replace("'", '"')
    if not path:
        return part
    return f"{path}{part}" if part.startswith("[") else f"{path}.{part}"


def _env_map(value: Any) -> dict[str, str] | None:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        return None
    out: dict[str, str] = {}
    for item in value:
        name, _, v = item.partition("=")
        out[name] = v
    return out


def json_changes(document: str, a: Any, b: Any, path: str = "") -> list[FieldChange]:
    """Field-by-field differences between two JSON values."""
    if path.endswith("Env"):
        ea, eb = _env_map(a), _env_map(b)
        if ea is not None and eb is not None:
            a, b = ea, eb
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[FieldChange] = []
        for key in sorted(a.keys() | b.keys()):
            sub = _join(path, str(key))
            if key == "Env" and (key not in a or key not in b):
                # A variable set on one side only: name it, not the whole list.
                out.extend(json_changes(document, a.get(key, []), b.get(key, []), sub))
            elif key not in a:
                out.append(FieldChange(document, sub, "added", None, b[key]))
            elif key not in b:
                out.append(FieldChange(document, sub, "removed", a[key], None))
            else:
                out.extend(json_changes(document, a[key], b[key], sub))
        return out
    if path == "history" and isinstance(a, list) and isinstance(b, list):
        out = []
        for i in range(max(len(a), len(b))):
            sub = f"history[{i}]"
            if i >= len(a):
                out.append(FieldChange(document, sub, "added", None, b[i]))
            elif i >= len(b):
                out.append(FieldChange(document, sub, "removed", a[i], None))
            else:
                out.extend(json_changes(document, a[i], b[i], sub))
        return _collapse_history(out)
    if a != b:
        return [FieldChange(document, path, "changed", a, b)]
    return []


def _collapse_history(changes: list[FieldChange]) -> list[FieldChange]:
    """`history[0].created`, `history[1].created`… with one before/after: `history[*].created`."""
    groups: dict[tuple[str, str, str], list[FieldChange]] = {}
    for c in changes:
        if c.change == "changed" and _HISTORY.match(c.field):
            key = (_HISTORY.sub("history[*]", c.field), repr(c.before), repr(c.after))
            groups.setdefault(key, []).append(c)
    out: list[FieldChange] = []
    done: set[str] = set()
    for c in changes:
        key = (_HISTORY.sub("history[*]", c.field), repr(c.before), repr(c.after))
        group = groups.get(key, [])
        if len(group) > 1:
            if key[0] not in done:
                done.add(key[0])
                out.append(FieldChange(c.document, key[0], "changed", c.before, c.after))
            continue
        out.append(c)
    return out


def field_changes(a: Image, b: Image) -> list[FieldChange]:
    out: list[FieldChange] = []
    if a.manifest is not None and b.manifest is not None:
        out.extend(
            c
            for c in json_changes("manifest", a.manifest, b.manifest)
            if c.field not in _MANIFEST_SKIP and not c.field.startswith("layers")
        )
    out.extend(c for c in json_changes("config", a.config, b.config) if c.field not in _CONFIG_SKIP)
    return out


def _side(layer: Layer) -> LayerSide:
    d = layer.descriptor
    return LayerSide(
        layer.position,
        str(d.digest),
        str(layer.diff_id),
        d.size,
        d.media_type,
        layer.created_by,
        layer.codec,
    )


def _pairs(a: Sequence[Layer], b: Sequence[Layer]) -> list[tuple[Layer | None, Layer | None]]:
    """Align two layer lists: by diff_id, then unmatched runs by history line, then in order."""
    out: list[tuple[Layer | None, Layer | None]] = []
    by_id = difflib.SequenceMatcher(
        None, [str(x.diff_id) for x in a], [str(x.diff_id) for x in b], autojunk=False
    )
    for tag, i1, i2, j1, j2 in by_id.get_opcodes():
        if tag == "equal":
            out.extend(zip(a[i1:i2], b[j1:j2], strict=True))
        elif tag == "replace":
            out.extend(_pair_run(a[i1:i2], b[j1:j2]))
        else:
            out.extend((x, None) for x in a[i1:i2])
            out.extend((None, y) for y in b[j1:j2])
    return out


def _pair_run(a: Sequence[Layer], b: Sequence[Layer]) -> list[tuple[Layer | None, Layer | None]]:
    out: list[tuple[Layer | None, Layer | None]] = []
    by_history = difflib.SequenceMatcher(
        None, [x.created_by for x in a], [x.created_by for x in b], autojunk=False
    )
    for tag, i1, i2, j1, j2 in by_history.get_opcodes():
        xs, ys = a[i1:i2], b[j1:j2]
        if tag == "equal":
            out.extend(zip(xs, ys, strict=True))
            continue
        common = min(len(xs), len(ys))
        out.extend(zip(xs[:common], ys[:common], strict=True))
        out.extend((x, None) for x in xs[common:])
        out.extend((None, y) for y in ys[common:])
    return out


def _gzip_header(image: Image, layer: Layer) -> str:
    """What a gzip stream's fixed header says about its writer (XFL and OS bytes)."""
    with image.open_layer(layer) as f:
        head = f.read(10)
    if sniff_compression(head) != "gzip" or len(head) < 10:
        return ""
    return f"gzip header xfl={head[8]} os={head[9]}"


def compression_causes(a: Image, la: Layer, b: Image, lb: Layer) -> tuple[Cause, ...]:
    """Why the same tar bytes have two digests: media type, codec (by identity when both are
    known, else by what the gzip headers reveal), and always the compressed bytes."""
    da, db = la.descriptor, lb.descriptor
    causes: list[Cause] = []
    if da.media_type != db.media_type:
        causes.append(Cause(MEDIA_TYPE, da.media_type, db.media_type))
    if la.codec and lb.codec:
        if la.codec != lb.codec:
            causes.append(Cause(CODEC, la.codec, lb.codec))
        else:
            # One codec, one input, two outputs: the compressor is not deterministic (its
            # output depends on write sizes, threads or timing).
            causes.append(Cause(CODEC_OUTPUT, la.codec, "same codec, other bytes"))
    else:
        # A layout or a registry does not say which codec wrote a layer; a gzip header's XFL
        # and OS bytes tell some writers apart (isal and zlib set them differently).
        ha, hb = _gzip_header(a, la), _gzip_header(b, lb)
        wa = f"{la.codec} ({ha})" if la.codec and ha else (la.codec or ha or "not gzip")
        wb = f"{lb.codec} ({hb})" if lb.codec and hb else (lb.codec or hb or "not gzip")
        if ha != hb or la.codec or lb.codec:
            causes.append(Cause(CODEC, wa, wb))
    if da.digest != db.digest:
        causes.append(
            Cause(
                COMPRESSED_BYTES,
                f"{da.digest.short} ({da.size} bytes)",
                f"{db.digest.short} ({db.size} bytes)",
            )
        )
    return tuple(causes)


def _entries(
    image: Image, layer: Layer, cancel: CancelToken | None
) -> tuple[list[TarEntry], TarSummary]:
    try:
        with image.open_layer(layer) as f:
            return read_layer(f, cancel)
    except LayerReadError as e:
        # Which of the two images, and which of its layers: the reader knows neither.
        raise LayerReadError(
            f"{image.ref.where}: layer {layer.position} ({layer.descriptor.digest.short}): {e}"
        ) from None


def _contents(
    image: Image, layer: Layer, paths: Collection[str], cancel: CancelToken | None
) -> dict[str, FileContent]:
    with image.open_layer(layer) as f:
        return read_members(f, paths, TEXT_DIFF_LIMIT + 1, cancel)


def unified_text_diff(path: str, before: str, after: str) -> tuple[str, ...]:
    """A short unified diff (one line of context) of two texts, its `---`/`+++` header and
    lines past TEXT_DIFF_LINES dropped and counted."""
    lines = list(difflib.unified_diff(before.splitlines(), after.splitlines(), n=1, lineterm=""))[
        2:
    ]
    if len(lines) > TEXT_DIFF_LINES:
        rest = len(lines) - TEXT_DIFF_LINES + 1
        lines = [*lines[: TEXT_DIFF_LINES - 1], f"… {rest} more diff lines"]
    return tuple(lines)


def _with_text_diffs(
    a: Image,
    la: Layer,
    b: Image,
    lb: Layer,
    found: tuple[FileChange, ...],
    text_paths: Collection[str],
    cancel: CancelToken | None,
) -> tuple[FileChange, ...]:
    """`found` with a unified diff on each changed file of `text_paths` whose contents
    changed and are small text on both sides."""
    wanted = {
        f.path.lstrip("/")
        for f in found
        if f.change == "changed"
        and f.path in text_paths
        and any(c.what == CONTENT for c in f.causes)
    }
    if not wanted:
        return found
    before, after = _contents(a, la, wanted, cancel), _contents(b, lb, wanted, cancel)
    out = []
    for f in found:
        x, y = before.get(f.path.lstrip("/")), after.get(f.path.lstrip("/"))
        if (
            x is not None
            and y is not None
            and not (x.binary or y.binary or x.truncated or y.truncated)
        ):
            f = replace(f, text_diff=unified_text_diff(f.path, x.text, y.text))
        out.append(f)
    return tuple(out)


def diff_images(
    a: Image,
    b: Image,
    *,
    files: bool = True,
    cancel: CancelToken | None = None,
    text_paths: Collection[str] = (),
) -> ImageDiff:
    """Why `a` and `b` differ. `files=False` stops at layer level (no blob is read).
    `text_paths` ("/etc/motd"…): files whose changed contents are also shown as a text diff
    (when both sides are text of at most TEXT_DIFF_LIMIT bytes)."""
    if a.ref.manifest and a.ref.manifest == b.ref.manifest:
        layers = tuple(
            LayerChange("unchanged", _side(x), _side(y))
            for x, y in zip(a.layers, b.layers, strict=True)
        )
        return ImageDiff(a.ref, b.ref, (), layers)
    changes: list[LayerChange] = []
    for la, lb in _pairs(a.layers, b.layers):
        if la is None or lb is None:
            image, layer = (b, lb) if la is None else (a, la)
            assert layer is not None
            listed: tuple[FileChange, ...] = ()
            if files:
                entries, _ = _entries(image, layer, cancel)
                kind = "added" if la is None else "removed"
                last = {e.path: e for e in entries}
                listed = tuple(
                    FileChange("/" + p, kind, (), describe(last[p])) for p in sorted(last)
                )
            changes.append(
                LayerChange(
                    "added" if la is None else "removed",
                    _side(la) if la else None,
                    _side(lb) if lb else None,
                    listed,
                )
            )
            continue
        if la.diff_id == lb.diff_id:
            if la.descriptor.digest == lb.descriptor.digest:
                if la.descriptor.media_type == lb.descriptor.media_type:
                    changes.append(LayerChange("unchanged", _side(la), _side(lb)))
                else:
                    cause = Cause(MEDIA_TYPE, la.descriptor.media_type, lb.descriptor.media_type)
                    changes.append(LayerChange("retyped", _side(la), _side(lb), (), (), (cause,)))
                continue
            changes.append(
                LayerChange(
                    "recompressed",
                    _side(la),
                    _side(lb),
                    compression=compression_causes(a, la, b, lb),
                )
            )
            continue
        found: tuple[FileChange, ...] = ()
        notes: tuple[str, ...] = ()
        if files:
            ea, sa = _entries(a, la, cancel)
            eb, sb = _entries(b, lb, cancel)
            found, notes = compare_entries(ea, eb, sa, sb)
            if text_paths:
                found = _with_text_diffs(a, la, b, lb, found, text_paths, cancel)
        changes.append(LayerChange("changed", _side(la), _side(lb), found, notes))
    return ImageDiff(a.ref, b.ref, tuple(field_changes(a, b)), tuple(changes))
