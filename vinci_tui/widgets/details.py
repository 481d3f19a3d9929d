"""The Details pane: manifest, config and codec of the image, then the selected layer node's
digests, diff_ids, media types, cache key, what went into that key and what changed in it
since the previous build of this session.

It is a two-column table so that any row can be the cursor's: `y` (or enter) copies that
row's full value (a digest, a key) to the clipboard via OSC 52.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from engine.builder.result import BuildResult
from engine.humanize import human_bytes
from engine.inspection import (
    ImageInfo,
    InputChange,
    image_from_result,
    key_inputs,
)
from vinci_tui.clock import Clock, format_seconds


@dataclass(frozen=True)
class LayerChanges:
    """What changed in a layer node's inputs since its previous build (None: no previous)."""

    changes: tuple[InputChange, ...] | None


FIELD_WIDTH = 12


class DetailsTable(DataTable[Text]):
    HELP = (
        "The image's manifest and config, the codec, and for the selected layer node: each "
        "image layer's digest, diff_id, media type and size, the cache key, what went into "
        "it, and which inputs changed since the last build. Put the cursor on a row and "
        "press y to copy its value."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "copy_row", "Copy", id="details.copy"),
        Binding("j", "cursor_down", "Down", show=False, id="details.down"),
        Binding("k", "cursor_up", "Up", show=False, id="details.up"),
        Binding("g", "scroll_top", "Top", show=False, id="details.top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="details.bottom"),
    ]

    def __init__(self, clock: Clock, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", show_header=False, zebra_stripes=False)
        self.clock = clock
        self._copy: dict[str, str] = {}
        self._rows: list[tuple[Text, Text, str | None]] = []
        self._pending_scroll: tuple[float, float] | None = None
        self.needle = ""  # `/`: only the rows whose field or value contains it
        self.pushed = ""  # the last push's line, shown with the image until the next push
        self._shown: tuple[BuildResult | None, int | None, LayerChanges | None, str] = (
            None,
            None,
            None,
            "",
        )

    def _row(self, field: str, value: str | Text, copy: str | None = None) -> None:
        label = Text(field, style="bold" if field and not field.startswith(" ") else "dim")
        cell = value if isinstance(value, Text) else Text(value)
        self._rows.append((label, cell, copy))

    def _flush(self) -> None:
        """Replace the table's rows with the collected ones.

        Column widths are set from the content here rather than left to the table's
        automatic sizing, which depended on when the table was first laid out.
        """
        cursor = self.cursor_row
        # Two flushes can come before one refresh (a build's end, then its result): the scroll
        # to restore is the one the user left, not the first flush's reset.
        scroll = self._pending_scroll or (self.scroll_x, self.scroll_y)
        self._pending_scroll = scroll
        self.clear(columns=True)
        self._copy.clear()
        self.add_column("field", key="field", width=FIELD_WIDTH)
        widest = max((cell.cell_len for _, cell, _ in self._rows), default=1)
        self.add_column("value", key="value", width=widest)
        needle = self.needle.lower()
        for n, (label, cell, copy) in enumerate(self._rows):
            text = f"{label.plain} {cell.plain}"
            # A failure stays in view whatever the filter.
            if needle and needle not in text.lower() and not cell.plain.startswith("✗"):
                continue
            key = f"r{n}"
            self.add_row(label, cell, key=key)
            if copy:
                self._copy[key] = copy
        self._rows = []
        if self.row_count:
            # A rebuild shows the same rows with new values: the cursor and the scroll stay.
            self.move_cursor(row=min(cursor, self.row_count - 1), scroll=False)
            # After the refresh: the new rows' height is known only then.
            self.call_after_refresh(self._restore_scroll)

    def _restore_scroll(self) -> None:
        if self._pending_scroll is not None:
            x, y = self._pending_scroll
            self._pending_scroll = None
            self.scroll_to(x, y, animate=False, immediate=True)

    def _heading(self, text: str) -> None:
        self._row("", Text(text, style="bold underline"))

    def show(
        self,
        result: BuildResult | None,
        node: int | None,
        changes: LayerChanges | None,
        note: str = "",
    ) -> None:
        self._shown = (result, node, changes, note)
        self._rows = []
        if result is None:
            for line in (note or "No build yet.").splitlines():
                self._row("", Text(line, style="bold red" if line.startswith("✗") else "dim"))
        else:
            for line in note.splitlines():
                style = (
                    "bold red" if line.startswith("✗") else "red" if line[:1] == " " else "yellow"
                )
                self._row("", Text(line, style=style))
            image = image_from_result(result)
            self._image(result, image)
            if node is not None:
                self._layer(result, image, node, changes)
        self._flush()

    def _image(self, result: BuildResult, image: ImageInfo) -> None:
        self._heading(f"Image {image.reference or '(unnamed)'}")
        self._row("platform", image.platform)
        manifest = result.manifest
        self._row("manifest", str(manifest.digest), str(manifest.digest))
        self._row("  media type", f"{manifest.media_type} · {manifest.size} B")
        self._row("config", str(image.config.digest), str(image.config.digest))
        self._row("  media type", f"{image.config.media_type} · {image.config.size} B")
        self._row("codec", result.codec.summary)
        self._row("  identity", result.codec.identity, result.codec.identity)
        self._row("layers", f"{len(image.layers)} ({result.cached} of {len(result.layers)} cached)")
        if self.pushed:
            self._row("pushed", Text(self.pushed.removeprefix("pushed "), style="green"))

    def _layer(
        self, result: BuildResult, image: ImageInfo, node: int, changes: LayerChanges | None
    ) -> None:
        layer = next((r for r in result.layers if r.index == node), None)
        if layer is None:
            return
        self._heading(f"Layer {node} · {layer.label} · {layer.summary}")
        parts = [info for info in image.layers if info.node == node]
        for info in parts:
            if len(parts) > 1:
                self._row("image layer", str(info.position))
            self._row("digest", str(info.descriptor.digest), str(info.descriptor.digest))
            self._row("diff_id", str(info.diff_id), str(info.diff_id))
            self._row("media type", info.descriptor.media_type)
            self._row("codec", info.compression)
            size = human_bytes(info.descriptor.size)
            if info.descriptor.size >= 1024:
                size += f" ({info.descriptor.size} B)"
            if info.uncompressed_size:
                size += f", uncompressed {human_bytes(info.uncompressed_size)}"
            self._row("size", size)
        self._row("cache key", layer.record.key, layer.record.key)
        how = "hit: nothing rebuilt" if layer.cache_hit else "miss: built"
        seconds = format_seconds(self.clock.seconds(layer.seconds))
        copied = ""
        if layer.reused and not layer.cache_hit:
            usize = sum(info.uncompressed_size or 0 for info in parts)
            share = f"{layer.reused / usize:.0%}" if usize else human_bytes(layer.reused)
            copied = f", {share} copied from its last build's members"
        self._row("cache", f"{how} in {seconds}{copied}")
        if layer.plan is None:
            self._row("key inputs", "the imported image's layers (by digest)")
        else:
            for i, (name, value) in enumerate(key_inputs(layer.plan, result.codec.identity)):
                self._row("key inputs" if i == 0 else "", f"{name}: {value}")
        if changes is None or changes.changes is None:
            self._row("changed", Text("first build of this node in this session", style="dim"))
        elif not changes.changes:
            self._row("changed", Text("no inputs changed since the last build", style="dim"))
        else:
            for i, change in enumerate(changes.changes):
                self._row("changed" if i == 0 else "", Text(str(change), style="yellow"))

    def set_needle(self, needle: str) -> None:
        self.needle = needle
        self.show(*self._shown)

    def copy_value(self) -> str | None:
        """The full value of the cursor's row, if it holds one worth copying."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self._copy.get(key or "")

    def action_copy_row(self) -> None:
        value = self.copy_value()
        if value is None:
            self.app.bell()
            return
        self.app.copy_to_clipboard(value)
        self.app.notify(f"copied {value[:19]}…" if len(value) > 20 else f"copied {value}")
