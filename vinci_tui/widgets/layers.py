"""The Layers pane: one row per layer node with its live state, progress, size and digest.

Rows are keyed by the layer's index in the spec and always shown in spec order, whatever
order the worker pool finishes them in. Only rows an event changed are repainted. The column
set follows the pane's width: below COMPACT_BELOW cells the digest, seconds and cache columns
go (Details has them), the way dive shrinks its layer list on small terminals.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from vinci_tui.clock import Clock, format_eta, format_seconds
from vinci_tui.fmt import bar, compact_bytes, short_digest
from vinci_tui.model import BuildModel, LayerRow

COMPACT_BELOW = 84
BAR = 8

STATE_STYLES = {
    "queued": "dim",
    "hashing": "yellow",
    "building": "bright_blue",
    "compressing": "blue",
    "fetching": "cyan",
    "pushing": "cyan",
    "cached": "green",
    "done": "bold green",
    "failed": "bold red",
    "cancelled": "dim red",
}

# The progress column: the bar, then " 45M/100M  12M/s  9s" (bytes, rate, time left).
PROGRESS = BAR + 24
# (key, header, width or 0 for the flexible one), widths including a one-cell gap.
WIDE = (
    ("index", "#", 3),
    ("layer", "layer", 0),
    ("state", "state", 12),
    ("progress", "progress", PROGRESS),
    ("size", "size", 7),
    ("digest", "digest", 13),
    ("time", "time", 6),
    ("cache", "cache", 5),
)
# Below WIDE_FROM cells the seconds go (Details and the log have them), so the layer's name
# keeps its room beside a progress column wide enough for bytes, rate and time left.
FULL = tuple(column for column in WIDE if column[0] != "time")
WIDE_FROM = 104
# Compact: no digest or time (Details has them) and no cache column: the state says it
# (cached is a hit, done a miss).
COMPACT = (
    ("index", "#", 3),
    ("layer", "layer", 0),
    ("state", "state", 12),
    ("progress", "progress", BAR + 6),
    ("size", "size", 7),
)


class LayersTable(DataTable[Text]):
    HELP = (
        "One row per layer node, in spec order: state (queued, hashing, building, compressing, "
        "cached, done, failed), progress with bytes and rate, size, short digest, seconds, "
        "and whether the cache had it. Moving onto a row selects that layer everywhere."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False, id="layers.down"),
        Binding("k", "cursor_up", "Up", show=False, id="layers.up"),
        Binding("g", "scroll_top", "Top", show=False, id="layers.top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="layers.bottom"),
    ]

    class LayerSelected(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, clock: Clock, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", cell_padding=0, zebra_stripes=False)
        self.clock = clock
        self.model = BuildModel(clock)
        self.names: dict[int, str] = {}  # layer index -> "file /cat", from the spec
        # The layer the app has selected: the cursor goes back to it whenever the rows are
        # rebuilt (a new build, a resize), so a rebuild never moves the user's place.
        self.wanted: int | None = None
        self.needle = ""  # `/`: only the rows whose name, label or state contains it
        self._columns: tuple[tuple[str, str, int], ...] = ()

    # -- columns follow the width ----------------------------------------------------------

    def _layout_for(self, width: int) -> tuple[tuple[str, str, int], ...]:
        if width < COMPACT_BELOW:
            return COMPACT
        return FULL if width < WIDE_FROM else WIDE

    def on_resize(self, event: events.Resize) -> None:
        self._ensure_columns(force=False)

    def _ensure_columns(self, force: bool) -> None:
        width = self.scrollable_content_region.width or self.size.width
        if not width:
            return
        layout = self._layout_for(width)
        flexible = max(8, width - sum(w for _, _, w in layout) - 1)
        columns = tuple((k, h, w or flexible) for k, h, w in layout)
        if columns == self._columns and not force:
            return
        self._columns = columns
        cursor = self.cursor_row
        self.clear(columns=True)
        for key, header, w in columns:
            self.add_column(header, key=key, width=w)
        for index in sorted(self.model.rows):
            if self._visible(self.model.rows[index]):
                self.add_row(*self._cells(self.model.rows[index]), key=str(index))
        # An explicit height (header + rows; the pane caps it): `auto` was measured at
        # whatever moment the layout ran, sometimes before the rows existed.
        self.styles.height = self.row_count + 1
        if self.wanted is not None and str(self.wanted) in self.rows:
            self.move_cursor(row=self.get_row_index(str(self.wanted)))
        elif self.row_count:
            self.move_cursor(row=min(cursor, self.row_count - 1))

    # -- rows ------------------------------------------------------------------------------

    def show_model(self, model: BuildModel) -> None:
        """Show a whole model (a new build, or the last good one again)."""
        self.model = model
        self._columns = ()
        self._ensure_columns(force=True)

    def refresh_rows(self, indexes: set[int]) -> None:
        if not self._columns:
            self._ensure_columns(force=True)
            return
        for index in indexes:
            row = self.model.rows.get(index)
            if row is None:
                continue
            key = str(index)
            if key not in self.rows:
                if not self._visible(row):
                    continue  # filtered out
                self._ensure_columns(force=True)
                return
            for (column, _, _), value in zip(self._columns, self._cells(row), strict=True):
                self.update_cell(key, column, value)

    def _visible(self, row: LayerRow) -> bool:
        needle = self.needle.lower()
        if not needle:
            return True
        text = f"{row.index} {self.names.get(row.index, '')} {row.label} {row.state}"
        return needle in text.lower()

    def set_needle(self, needle: str) -> None:
        self.needle = needle
        self._ensure_columns(force=True)

    def _cells(self, row: LayerRow) -> list[Text]:
        return [self._cell(row, key, width) for key, _, width in self._columns]

    def _cell(self, row: LayerRow, key: str, width: int) -> Text:
        if key == "index":
            return Text(str(row.index), style="dim")
        if key == "layer":
            name = self.names.get(row.index) or row.label
            # One cell is the gap to the next column (the table has no cell padding).
            if len(name) > width - 1:
                name = name[: width - 2] + "…"
            return Text(name, no_wrap=True)
        if key == "state":
            text = row.state if row.state != "failed" else "failed ✗"
            return Text(text, style=STATE_STYLES.get(row.state, ""))
        if key == "progress":
            return self._progress(row, width - 1)
        if key == "size":
            return Text(f"{compact_bytes(row.size):>5} " if row.size is not None else "")
        if key == "digest":
            return Text(short_digest(row.digest), style="dim")
        if key == "time":
            if row.seconds is None:
                return Text("")
            return Text(format_seconds(self.clock.seconds(row.seconds)))
        if key == "cache":
            if row.cache_hit is None:
                return Text("")
            return Text("hit", style="green") if row.cache_hit else Text("miss", style="yellow")
        return Text("")

    def _progress(self, row: LayerRow, width: int) -> Text:
        style = "green" if row.state in ("cached", "done") else "bright_blue"
        text = bar(row.fraction, BAR, style)
        rest = width - BAR - 1
        if row.finished or not row.total:
            return text
        if rest >= 22:
            amount = f"{compact_bytes(row.done)}/{compact_bytes(row.total)}"
            rate = f"{compact_bytes(row.rate)}/s" if row.rate else ""
            eta = format_eta(row.eta) if row.eta is not None else ""
            text.append(f" {amount:<9} {rate:>6} {eta:>4}"[:rest])
        else:
            pct = 100 * row.done / row.total if row.total else 0
            text.append(f" {pct:3.0f}%")
        return text

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Only the user's moves select a layer. Rebuilding the rows moves the cursor too (to
        # row 0, then back to the wanted row): by the time such a move's message arrives the
        # cursor has moved on, or it lands on the wanted row; either way it selects nothing.
        if not self.has_focus or event.row_key.value is None:
            return
        # Before the app has selected a layer (the first build), the rows come and go under
        # the cursor: no move is the user's yet, and a late one would undo the app's choice.
        if self.wanted is None or event.cursor_row != self.cursor_row:
            return
        index = int(event.row_key.value)
        if index != self.wanted:
            self.wanted = index
            self.post_message(self.LayerSelected(index))

    def select_layer(self, index: int) -> None:
        self.wanted = index
        key = str(index)
        if key in self.rows:
            row = self.get_row_index(key)
            if row != self.cursor_row:
                self.move_cursor(row=row)
