"""The text form of an ImageDiff: top down, one line per difference, causes spelled out.

A  spec hello/vinci.yaml       manifest sha256:da95264a8c3f…  config sha256:1c2e…
B  oci  /tmp/other.oci         manifest sha256:51a0c1f7de27…  config sha256:98ab…
config keys
  ~ config.Env.PATH: "/bin" -> "/usr/bin:/bin"
layers
  = layer 0 unchanged   sha256:6a1f…  vinci: file /cat
  ~ layer 1 changed     sha256:0b9e… -> sha256:77c2…  vinci: file /message
      ~ /message  content sha256:c98c24b677ef (14 bytes) -> sha256:8b1a9953c461 (15 bytes)
          -Hello, World!
          +Hello, Worlds!
  + layer 2 added       sha256:31d0…  vinci: file /etc/motd
      + /etc/motd  file 0444 0:0 35 bytes
  ~ layer 3 recompressed sha256:5e0f… -> sha256:a3b1…  vinci: directory /srv
      codec-only change: same diff_id sha256:77d2…, the tar bytes are identical
      ~ codec gzip/libdeflate-1.19/6 -> zstd/1.5.6/3
4 differences:
  config config.Env.PATH changed
  layer 1 changed: /message changed (content)
  layer 2 added (vinci: file /etc/motd)
  layer 3 recompressed (same diff_id): codec, compressed bytes

`render_lines` gives the same lines, each with the field, layer or file it describes (a text
diff's lines name their file), for a view that links a line to what caused it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.compare.model import FieldChange, FileChange, ImageDiff, LayerChange

MARK = {
    "added": "+",
    "removed": "-",
    "changed": "~",
    "recompressed": "~",
    "retyped": "~",
    "unchanged": "=",
}
DEFAULT_FILE_LIMIT = 50
SECTIONS = {"manifest": "manifest fields", "config": "config keys"}


@dataclass(frozen=True)
class RenderedLine:
    """One line of the text form, and what it describes (None for headings and summaries)."""

    text: str
    field: FieldChange | None = None
    layer: LayerChange | None = None
    file: FileChange | None = None
    kind: str = ""  # "heading", "field", "layer", "file", "diff", "summary" or "" (A/B lines)


def _value(v: Any) -> str:
    text = json.dumps(v, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 200 else text[:197] + "..."


def _field(f: FieldChange) -> str:
    if f.change == "added":
        return f"  + {f.field}: {_value(f.after)}"
    if f.change == "removed":
        return f"  - {f.field}: {_value(f.before)}"
    return f"  ~ {f.field}: {_value(f.before)} -> {_value(f.after)}"


def _short(digest: str) -> str:
    return digest[:19] + "…" if len(digest) > 19 else digest


def _layer(layer: LayerChange, file_limit: int, unchanged: bool) -> list[RenderedLine]:
    if layer.change == "unchanged" and not unchanged:
        return []
    a, b = layer.a, layer.b
    side = b or a
    assert side is not None
    if a is not None and b is not None and a.digest != b.digest:
        digests = f"{_short(a.digest)} -> {_short(b.digest)}"
    else:
        digests = _short(side.digest)
    created = f"  {side.created_by}" if side.created_by else ""
    head = f"  {MARK[layer.change]} {layer.label} {layer.change:<12} {digests}{created}"
    lines = [RenderedLine(head, layer=layer, kind="layer")]

    def about_layer(text: str) -> RenderedLine:
        return RenderedLine(text, layer=layer, kind="layer")

    if layer.change in ("recompressed", "retyped"):
        lines.append(
            about_layer(
                f"      codec-only change: same diff_id {_short(side.diff_id)}, the tar bytes "
                "are identical"
            )
        )
        lines.extend(about_layer(f"      ~ {c}") for c in layer.compression)
    for note in layer.notes:
        lines.append(about_layer(f"      ! {note}"))
    shown = layer.files if file_limit <= 0 else layer.files[:file_limit]
    for f in shown:
        if f.change == "changed":
            causes = "; ".join(str(c) for c in f.causes)
            text = f"      ~ {f.path}  {causes}"
        else:
            text = f"      {MARK[f.change]} {f.path}  {f.entry}"
        lines.append(RenderedLine(text, layer=layer, file=f, kind="file"))
        lines.extend(
            RenderedLine(f"          {d}", layer=layer, file=f, kind="diff") for d in f.text_diff
        )
    if len(shown) < len(layer.files):
        lines.append(
            about_layer(
                f"      … and {len(layer.files) - len(shown)} more files (--all lists them)"
            )
        )
    return lines


def render_lines(
    diff: ImageDiff, file_limit: int = DEFAULT_FILE_LIMIT, unchanged: bool = True
) -> list[RenderedLine]:
    """The text form, line by line, each line with what it describes."""
    width = max(len(diff.a.where), len(diff.b.where))
    lines = []
    for name, ref in (("A", diff.a), ("B", diff.b)):
        manifest = _short(ref.manifest) if ref.manifest else "(no manifest)"
        lines.append(
            RenderedLine(
                f"{name}  {ref.kind:<14} {ref.where:<{width}}  manifest {manifest}  "
                f"config {_short(ref.config)}"
            )
        )
    if diff.identical:
        lines.append(RenderedLine("identical: same manifest" if diff.a.manifest else "identical"))
        return lines
    for document in ("manifest", "config"):
        fields = [f for f in diff.fields if f.document == document]
        if fields:
            lines.append(RenderedLine(SECTIONS[document], kind="heading"))
            lines.extend(RenderedLine(_field(f), field=f, kind="field") for f in fields)
    if diff.layers:
        lines.append(RenderedLine("layers", kind="heading"))
        for layer in diff.layers:
            lines.extend(_layer(layer, file_limit, unchanged))
    summary = diff.headline()
    count = len(summary)
    lines.append(RenderedLine(f"{count} difference{'s' if count != 1 else ''}:", kind="heading"))
    lines.extend(RenderedLine(f"  {line}", kind="summary") for line in summary)
    return lines


def render(diff: ImageDiff, file_limit: int = DEFAULT_FILE_LIMIT, unchanged: bool = True) -> str:
    return "\n".join(line.text for line in render_lines(diff, file_limit, unchanged)) + "\n"
