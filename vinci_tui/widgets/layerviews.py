"""What the Contents pane shows in each of its views, and the lines above it: the selected
layer's files (marked added / modified / removed), the merged image, the largest files, and
the bytes later layers hide. The numbers come from engine.analysis; this module only words
them and picks the rows, so the app's part is to ask and to fill the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text

from engine.analysis import ImageAnalysis, LayerReport, origin_text
from engine.builder.result import BuildResult
from engine.humanize import human_bytes
from engine.inspection import FileEntry, LayerInfo, entries_from_plan
from engine.oci.descriptor import Descriptor
from vinci_tui.fmt import short_digest
from vinci_tui.widgets.contents import FlatEntry

CONTENTS_VIEWS = ("layer", "merged", "largest", "wasted")
LARGEST = 200  # rows of the largest-files view


@dataclass(frozen=True)
class ContentsShow:
    """One view of the pane. `key`: (what changes when rebuilt, view, layer, part); the pane
    keeps its place when only the first changes. Rows come as `entries` (a tree), `flat`, or
    `blob` (to be read in a thread: a layer without a plan, before the analysis is in)."""

    key: tuple[object, ...]
    heading: Text
    summary: Text
    entries: Sequence[FileEntry] | None = None
    node_label: str = ""
    flat: Sequence[FlatEntry] | None = None
    blob: Descriptor | None = None


def contents_show(
    view: str,
    result: BuildResult,
    analysis: ImageAnalysis | None,
    index: int | None,
    info: LayerInfo | None,
    sort_by: str,
) -> ContentsShow:
    if view == "layer":
        return _layer_view(result, analysis, index, info, sort_by)
    manifest = short_digest(result.manifest.digest)
    heading = Text.assemble(
        (_TITLES[view], "bold"),
        "  ",
        (f"sha256:{manifest}", "dim"),
        (f"  sort: {sort_by}  v: next view", "dim"),
    )
    key: tuple[object, ...] = ((str(result.manifest.digest), analysis is not None), view)
    if analysis is None:
        return ContentsShow(key, heading, Text("analysing the image's layers…", style="yellow"))
    summary = _image_summary(analysis)
    if view == "merged":
        return ContentsShow(key, heading, summary, entries=analysis.merged)
    labels = analysis.labels()
    if view == "largest":
        rows = [FlatEntry(e, origin_text(e)) for e in analysis.largest(LARGEST)]
        return ContentsShow(key, heading, summary, flat=rows)
    hidden = [
        FlatEntry(
            s.entry,
            f"{labels[s.layer]} · {s.how} by {labels[s.by]}"
            if s.by != s.layer
            else f"{labels[s.layer]} · written twice in it",
        )
        for s in analysis.shadowed
    ]
    return ContentsShow(key, heading, summary, flat=hidden)


_TITLES = {
    "merged": "merged image (every layer applied)",
    "largest": f"largest files of the merged image (top {LARGEST})",
    "wasted": "bytes later layers shadow or remove",
}


def _image_summary(analysis: ImageAnalysis) -> Text:
    files = sum(1 for e in analysis.merged if e.type == "file")
    return Text.assemble(
        (f"efficiency {analysis.efficiency:.1%}", "bold"),
        " · ",
        (f"{human_bytes(analysis.wasted_bytes)} wasted", "yellow" if analysis.wasted_bytes else ""),
        f" of {human_bytes(analysis.total_bytes)} (shadowed or removed by a later layer)",
        f" · {files} files, {human_bytes(analysis.image_bytes)} in the image",
    )


def _layer_view(
    result: BuildResult,
    analysis: ImageAnalysis | None,
    index: int | None,
    info: LayerInfo | None,
    sort_by: str,
) -> ContentsShow:
    layer = next((r for r in result.layers if r.index == index), None)
    if layer is None or info is None or index is None:
        return ContentsShow(("none", "layer"), Text("no layer selected", style="dim"), Text())
    parts = list(layer.record.descriptors)
    part = next((i for i, d in enumerate(parts) if d.digest == info.descriptor.digest), 0)
    heading = Text.assemble(
        (f"layer {index} ", "bold"),
        (layer.label, "cyan"),
        f"  {layer.summary}  ",
        (f"sha256:{short_digest(info.descriptor.digest)}", "dim"),
    )
    if len(parts) > 1:
        heading.append(f"  image layer {part + 1}/{len(parts)} ([ ])", style="dim")
    heading.append(f"  sort: {sort_by}  v: next view", style="dim")
    key: tuple[object, ...] = (
        (str(info.descriptor.digest), analysis is not None),
        "layer",
        index,
        part,
    )
    if analysis is not None and info.position < len(analysis.layers):
        report = analysis.layers[info.position]
        summary = _layer_summary(report, analysis)
        return ContentsShow(key, heading, summary, entries=report.entries, node_label=layer.label)
    summary = Text("analysing the image's layers…", style="dim")
    if layer.plan is not None:
        entries = entries_from_plan(layer.plan, str(result.spec.base_dir))
        return ContentsShow(key, heading, summary, entries=entries, node_label=layer.label)
    return ContentsShow(key, heading, summary, node_label=layer.label, blob=info.descriptor)


def _layer_summary(report: LayerReport, analysis: ImageAnalysis) -> Text:
    """`+7 ~1 -2` and where this layer's bytes go: what later layers hide of it (naming the
    largest hider), and what it hides below."""
    labels = analysis.labels()
    out = Text.assemble(
        (f"+{report.added}", "green"),
        " ",
        (f"~{report.modified}", "yellow"),
        " ",
        (f"-{report.removed}", "red"),
        f"  {human_bytes(report.file_bytes)} of files",
    )
    if report.shadowed:
        by: dict[int, int] = {}
        for s in report.shadowed:
            by[s.by] = by.get(s.by, 0) + s.size
        first = max(by, key=lambda k: (by[k], -k))
        others = f" and {len(by) - 1} more" if len(by) > 1 else ""
        out.append(
            f"  {human_bytes(report.shadowed_bytes)} hidden by {labels[first]}{others}",
            style="yellow",
        )
    if report.removes_bytes:
        out.append(f"  hides {human_bytes(report.removes_bytes)} below", style="yellow")
    out.append(f"  ·  image efficiency {analysis.efficiency:.1%}", style="dim")
    return out
