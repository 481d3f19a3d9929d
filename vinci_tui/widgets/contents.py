"""The Contents pane: a layer's files as a tree, dive-style, or the whole image merged, or a
flat list (the largest files, the bytes later layers hide).

Each row is mode, uid:gid, size, then the name drawn with tree guides (after a change mark:
+ added, ~ modified, - removed, relative to the layers below), then the origin: the spec node
that put the file there and the host path it read (`directory ← ./site/a.txt`). Directories
show the total size below them, so sorting by size (`s`) puts the heavy branches first at
every level. `/` filters (matches and the directories above them stay), enter opens a
directory or shows a file's contents.

The table is virtual: the visible rows are a flat list computed from the tree model
(engine.inspection.tree_rows) and only the lines on screen are drawn, so sorting, filtering
and expanding cost the tree walk, not a widget per row (benchmarks/contents.py).

The tree model and its ordering live in engine.inspection, the analysis in engine.analysis,
shared with `vinci inspect`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from engine.analysis import origin_text
from engine.humanize import human_bytes
from engine.inspection import (
    FileEntry,
    TreeNode,
    TreeRow,
    build_tree,
    entry_columns,
    entry_name,
    matching_paths,
    tree_rows,
)
from vinci_tui.widgets.filter import FilterBar

# Above this many entries a layer opens with only its top level expanded: a wall of tens of
# thousands of rows helps no one find anything.
EXPAND_ALL_UP_TO = 2000

TYPE_STYLES = {
    "dir": "bold blue",
    "symlink": "cyan",
    "hardlink": "cyan",
    "whiteout": "red",
    "opaque": "red",
    "char": "yellow",
    "block": "yellow",
    "fifo": "yellow",
}

# The change a layer makes to the layers below (engine.analysis): its mark and colour.
CHANGE_MARKS = {
    "added": ("+", "green"),
    "modified": ("~", "yellow"),
    "removed": ("-", "red"),
}

MODE_WIDTH = 11
SIZE_WIDTH = 9


class Row(NamedTuple):
    """One visible line: a tree node (with its guides), or a flat entry shown by full path
    with a note in the origin column. A named tuple: one is made per visible row on every
    sort, filter keystroke and fold (10,000 of them), five times faster than a dataclass."""

    path: str
    entry: FileEntry | None
    node: TreeNode | None = None
    guides: str = ""
    note: str | None = None  # the origin column of a flat row


@dataclass(frozen=True)
class FlatEntry:
    """A row of a flat list: the entry and what its origin column says."""

    entry: FileEntry
    note: str


class FileTable(ScrollView, can_focus=True):
    HELP = (
        "The selected layer's files as a tree: mode, uid:gid, size, name (with link target) "
        "and its origin, the spec node and the host file (layers[1].directory ← ./site/a.txt). "
        "Marks say what the layer does to the layers below: + added, ~ modified, - removed "
        "(a whiteout). v switches the view: this layer, the merged image (every layer applied, "
        "whiteouts honoured, the layer each file comes from), the largest files, and the bytes "
        "later layers shadow or remove (naming the layer that does it). The line above the "
        "table sums it up with the image's efficiency (1 - wasted/total, as dive). Sizes of "
        "directories are totals below them."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open/view", id="contents.open"),
        Binding("space", "fold", "Fold", show=False, id="contents.fold"),
        Binding("s", "sort", "Sort name/size", id="contents.sort"),
        Binding("v", "view", "Layer/merged/largest/wasted", id="contents.view"),
        Binding("e", "expand_all", "Expand all", show=False, id="contents.expand-all"),
        Binding("E", "collapse_all", "Collapse all", show=False, id="contents.collapse-all"),
        Binding("right_square_bracket", "part(1)", "Next part", show=False, id="contents.next"),
        Binding("left_square_bracket", "part(-1)", "Prev part", show=False, id="contents.prev"),
        Binding("down,j", "cursor_down", "Down", show=False, id="contents.down"),
        Binding("up,k", "cursor_up", "Up", show=False, id="contents.up"),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("home,g", "scroll_top", "Top", show=False, id="contents.top"),
        Binding("end,G", "scroll_bottom", "Bottom", show=False, id="contents.bottom"),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "file-table--header",
        "file-table--cursor",
    }
    DEFAULT_CSS = """
    FileTable {
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        &:focus {
            background-tint: $foreground 5%;
            & > .file-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .file-table--header {
                background-tint: $foreground 5%;
            }
        }
        & > .file-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        & > .file-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.root: TreeNode | None = None
        self.flat: list[FlatEntry] | None = None  # a flat list instead of a tree
        self.sort_by = "name"
        self.expanded: set[str] = set()
        self.needle = ""
        self.origin_prefix = ""
        self.owner_width = 8
        self.cursor_row = 0
        # The visible rows as the model gives them (made into a Row only when drawn).
        self._rows: list[TreeRow] | list[FlatEntry] = []
        self._index: dict[str, int] = {}
        self._name_need = 0

    # -- what is shown ---------------------------------------------------------------------

    def show_entries(
        self, entries: Sequence[FileEntry], node_label: str = "", *, keep: bool = False
    ) -> None:
        """Show `entries` as a tree; origins inside the node `node_label`
        ("layers[0].combined") are shown without its "layers[0]." (the heading names the
        layer). `keep`: the same layer rebuilt, so the user's place stays: the cursor on its
        path, what was collapsed stays collapsed (new directories follow the usual rule), and
        the scroll offset."""
        before = self.root if self.flat is None else None
        old_dirs = {n.path for n in _dirs(before)} if keep and before is not None else None
        cursor = self.current_path() if keep else None
        scroll = self.scroll_y
        self.origin_prefix = node_label.split(".", 1)[0] + "." if node_label else ""
        self._owner_width(entries)
        self.flat = None
        self.root = build_tree(entries)
        dirs = {n.path for n in _dirs(self.root)}
        fresh = dirs if len(entries) <= EXPAND_ALL_UP_TO else set()
        if old_dirs is not None:
            self.expanded = (self.expanded & dirs) | (fresh - old_dirs)
        else:
            self.expanded = fresh
        self._place(cursor, scroll if keep else 0.0)

    def show_flat(self, rows: Sequence[FlatEntry], *, keep: bool = False) -> None:
        """Show `rows` as a flat list of full paths, in the order given (the largest first,
        for both flat views); `s` sorts them by size."""
        cursor = self.current_path() if keep else None
        scroll = self.scroll_y
        self.origin_prefix = ""
        self._owner_width([r.entry for r in rows])
        self.root = None
        self.flat = list(rows)
        self._place(cursor, scroll if keep else 0.0)

    def _place(self, cursor: str | None, scroll: float) -> None:
        self.cursor_row = 0
        self.render_rows()
        if cursor is not None and cursor in self._index:
            self.cursor_row = self._index[cursor]
            self.scroll_to(y=scroll, animate=False, immediate=True)
        else:
            self.scroll_to(y=0, animate=False, immediate=True)
        self._keep_cursor_visible()

    def _owner_width(self, entries: Sequence[FileEntry]) -> None:
        self.owner_width = max([8] + [len(f"{e.uid}:{e.gid}") + 1 for e in entries])

    def clear_entries(self) -> None:
        self.root = None
        self.flat = None
        self.render_rows()

    def render_rows(self) -> None:
        """Recompute the visible rows (sort, filter, folds) and redraw what is on screen; the
        cursor stays on its path when that is still shown."""
        keep = self.current_path()
        rows = self._rows = self._visible()
        # And mark + guides + fold + name + a gap: the widest row, for the name column.
        if rows and isinstance(rows[0], FlatEntry):
            flat = [r.entry.path for r in rows if isinstance(r, FlatEntry)]
            self._index = {path: i for i, path in enumerate(flat)}
            self._name_need = 5 + max(
                len(r.entry.path) + _link_width(r.entry) for r in rows if isinstance(r, FlatEntry)
            )
        else:
            tree = [r for r in rows if isinstance(r, TreeRow)]
            self._index = {r.node.path: i for i, r in enumerate(tree)}
            self._name_need = 5 + max(
                (len(r.guides) + len(r.node.name) + _link_width(r.node.entry) for r in tree),
                default=0,
            )
        if keep is not None and keep in self._index:
            self.cursor_row = self._index[keep]
        self.cursor_row = max(0, min(self.cursor_row, len(self._rows) - 1))
        self.virtual_size = Size(self._width(), len(self._rows) + 1)  # + the header
        self._keep_cursor_visible()
        self.refresh()

    def _visible(self) -> list[TreeRow] | list[FlatEntry]:
        needle = self.needle.lower()
        if self.flat is not None:
            rows = [r for r in self.flat if needle in r.entry.path.lower()]
            if self.sort_by == "size":
                rows.sort(key=lambda r: (-r.entry.size, r.entry.path))
            return rows
        if self.root is None:
            return []
        only = matching_paths(self.root, needle) if needle else None
        return list(tree_rows(self.root, self.sort_by, self.expanded.__contains__, only))

    def _row(self, index: int) -> Row:
        r = self._rows[index]
        if isinstance(r, FlatEntry):
            return Row(r.entry.path, r.entry, note=r.note)
        return Row(r.node.path, r.node.entry, r.node, r.guides)

    # -- the DataTable-like surface the app and the tests use --------------------------------

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def current_path(self) -> str | None:
        if not self._rows:
            return None
        return self._row(min(self.cursor_row, len(self._rows) - 1)).path

    def current_node(self) -> TreeNode | None:
        if not self._rows:
            return None
        return self._row(min(self.cursor_row, len(self._rows) - 1)).node

    def current_entry(self) -> FileEntry | None:
        if not self._rows:
            return None
        return self._row(min(self.cursor_row, len(self._rows) - 1)).entry

    def move_cursor(self, *, row: int, scroll: bool = True) -> None:
        if not self._rows:
            return
        self.cursor_row = max(0, min(row, len(self._rows) - 1))
        if scroll:
            self._keep_cursor_visible()
        self.refresh()

    def get_row_index(self, path: str) -> int:
        return self._index[path]

    def get_row_at(self, index: int) -> list[Text]:
        """The cells of row `index`: mode, uid:gid, size, name (after its change mark and
        tree guides) and origin; a narrow pane draws only size, name and origin."""
        return self._cells(self._row(index))

    # -- drawing -------------------------------------------------------------------------------

    def _width(self) -> int:
        return self.scrollable_content_region.width or self.size.width or 80

    def _layout(self) -> list[tuple[int, str, int]]:
        """The columns drawn: (index in _cells, title, width). Below 70 cells the mode and
        owner give way, so the origin (which layer, which host file) keeps its place."""
        width = self._width()
        wide = width >= 70
        fixed = SIZE_WIDTH + (MODE_WIDTH + self.owner_width if wide else 0)
        rest = width - fixed - 1
        # The name column as wide as its longest row needs (up to 3/5), the origin the rest.
        origin = max(14, rest - min(self._name_need, rest * 3 // 5)) if rest >= 40 else 0
        name = max(12, rest - origin)
        columns = [(2, "size", SIZE_WIDTH), (3, "name", name)]
        if wide:
            columns[:0] = [(0, "mode", MODE_WIDTH), (1, "uid:gid", self.owner_width)]
        if origin:
            columns.append((4, "origin", origin))
        return columns

    def _cells(self, row: Row) -> list[Text]:
        entry, node = row.entry, row.node
        mode, owner, size = entry_columns(entry)
        kind = entry.type if entry is not None else "dir"
        name = Text()
        mark, colour = CHANGE_MARKS.get(entry.change if entry is not None else "", (" ", ""))
        name.append(f"{mark} ", style=f"bold {colour}" if colour else "")
        if node is not None:
            if node.entry is None:
                mode, owner = "d", ""  # implied by the paths below it, not in the layer
            name.append(row.guides, style="dim")
            if node.children:
                size = human_bytes(node.total)
                shown = self.needle or node.path in self.expanded
                name.append("▾ " if shown else "▸ ", style="dim")
            text = entry_name(node)
        else:
            text = row.path
            if entry is not None and entry.type == "symlink":
                text += f" -> {entry.target}"
            elif entry is not None and entry.type == "hardlink":
                text += f" => {entry.target}"
        style = TYPE_STYLES.get(kind, "")
        if entry is not None and entry.change == "removed":
            style = "red strike"
        label = Text(text, style=style)
        if self.needle:
            label.highlight_words([self.needle], style="reverse", case_sensitive=False)
        name.append_text(label)
        if row.note is not None:
            origin = row.note
        elif entry is None:
            origin = "(implied)"
        else:
            origin = origin_text(entry, self.origin_prefix)
        return [
            Text(mode, style="dim"),
            Text(owner),
            Text(f"{size:>8} "),
            name,
            Text(origin, style="dim"),
        ]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y == 0:
            header = self.get_component_rich_style("file-table--header")
            line = Text()
            for _i, title, w in self._layout():
                line.append_text(_fit(Text(title), w))
            return _strip(line, self.app.console, width, base + header)
        index = int(self.scroll_y) + y - 1
        if index >= len(self._rows):
            return Strip.blank(width, base)
        line = Text()
        cells = self._cells(self._row(index))
        for i, _title, w in self._layout():
            if i == 3:  # the name, always one cell short of the origin after it
                line.append_text(_fit(cells[i], w - 1))
                line.append(" ")
            else:
                line.append_text(_fit(cells[i], w))
        style = base
        if index == self.cursor_row:
            style = base + self.get_component_rich_style("file-table--cursor")
            return _strip(line, self.app.console, width, base, over=style)
        return _strip(line, self.app.console, width, style)

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(self._width(), len(self._rows) + 1)
        self._keep_cursor_visible()

    def _keep_cursor_visible(self) -> None:
        view = max(1, self.scrollable_content_region.height - 1)  # less the header
        top = int(self.scroll_y)
        if self.cursor_row < top:
            top = self.cursor_row
        elif self.cursor_row >= top + view:
            top = self.cursor_row - view + 1
        if top != int(self.scroll_y):
            self.scroll_to(y=top, animate=False, immediate=True)

    # -- actions -------------------------------------------------------------------------------

    class ViewFile(Message):
        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

    class PartChange(Message):
        def __init__(self, step: int) -> None:
            super().__init__()
            self.step = step

    class SortChanged(Message):
        def __init__(self, by: str) -> None:
            super().__init__()
            self.by = by

    class ViewChange(Message):
        """`v`: the app steps the pane to its next view."""

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        row = int(self.scroll_y) + offset.y - 1
        if row < len(self._rows):
            if row == self.cursor_row and event.chain > 1:
                self.action_open()
            self.move_cursor(row=row)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self.cursor_row + 1)

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self.cursor_row - 1)

    def action_page(self, step: int) -> None:
        view = max(1, self.scrollable_content_region.height - 1)
        self.move_cursor(row=self.cursor_row + step * view)

    def action_scroll_top(self) -> None:
        self.move_cursor(row=0)

    def action_scroll_bottom(self) -> None:
        self.move_cursor(row=len(self._rows) - 1)

    def action_fold(self) -> None:
        node = self.current_node()
        if node is None or not node.children:
            return
        self.expanded.symmetric_difference_update({node.path})
        self.render_rows()

    def action_open(self) -> None:
        node = self.current_node()
        entry = self.current_entry()
        if node is not None and node.children:
            self.action_fold()
        elif entry is not None and entry.type == "file" and entry.change != "removed":
            self.post_message(self.ViewFile(entry.path))
        else:
            self.app.bell()

    def action_sort(self) -> None:
        self.sort_by = "size" if self.sort_by == "name" else "name"
        self.render_rows()
        self.post_message(self.SortChanged(self.sort_by))

    def action_view(self) -> None:
        self.post_message(self.ViewChange())

    def action_expand_all(self) -> None:
        if self.root is not None:
            self.expanded = {n.path for n in _dirs(self.root)}
            self.render_rows()

    def action_collapse_all(self) -> None:
        self.expanded = set()
        self.render_rows()

    def action_part(self, step: int) -> None:
        self.post_message(self.PartChange(step))


def _link_width(entry: FileEntry | None) -> int:
    """The cells " -> TARGET" adds to a link's name."""
    return len(entry.target) + 4 if entry is not None and entry.target else 0


def _dirs(root: TreeNode) -> list[TreeNode]:
    """Every node of `root` with children; iterative (a tree may be deep)."""
    out = []
    stack = list(root.children.values())
    while stack:
        node = stack.pop()
        if node.children:
            out.append(node)
            stack.extend(node.children.values())
    return out


def _fit(cell: Text, width: int) -> Text:
    """`cell` cut (with an ellipsis) or padded to exactly `width` cells."""
    cell = cell.copy()
    cell.truncate(width, overflow="ellipsis", pad=True)
    return cell


def _strip(
    line: Text, console: Console, width: int, style: Style, over: Style | None = None
) -> Strip:
    """`line` as a strip of exactly `width` cells over `style` (and under `over`)."""
    segments = Segment.apply_style(line.render(console, end=""), style=style, post_style=over)
    return Strip(list(segments)).adjust_cell_length(width, style + over if over else style)


def _one_line(text: Text | str) -> Text:
    """A heading line cut with an ellipsis, never wrapped (its line is one row high)."""
    line = Text(text) if isinstance(text, str) else text.copy()
    line.no_wrap, line.overflow = True, "ellipsis"
    return line


class ContentsView(Vertical):
    """The Contents pane: a heading, the summary of what the layer does, the filter bar and
    the file table."""

    def __init__(self, *, blink: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self._blink = blink

    def compose(self) -> ComposeResult:
        yield Static("", id="contents-heading", classes="pane-heading")
        yield Static("", id="contents-summary", classes="pane-heading")
        yield FilterBar("filter paths…", id="contents-filter", blink=self._blink)
        yield FileTable(id="contents-table")

    @property
    def table(self) -> FileTable:
        return self.query_one(FileTable)

    def set_heading(self, text: Text | str) -> None:
        self.query_one("#contents-heading", Static).update(_one_line(text))

    def set_summary(self, text: Text | str) -> None:
        summary = self.query_one("#contents-summary", Static)
        summary.update(_one_line(text))
        summary.display = bool(str(text))

    def open_filter(self) -> None:
        self.query_one(FilterBar).open()

    def on_filter_bar_filter_changed(self, event: FilterBar.FilterChanged) -> None:
        self.table.needle = event.text
        self.table.render_rows()
