"""The Contents pane: the selected layer's files as a tree, dive-style.

Each row is mode, uid:gid, size, then the name drawn with tree guides, then the spec node that
put the file there. The metadata columns come first so that they line up whatever the depth.
Directories show the total size below them, so sorting by size (`s`) puts the heavy branches
first at every level. `/` filters (matches and the directories above them stay), enter opens a
directory or shows a file's contents.

The tree model and its ordering live in engine.inspection, shared with `vinci inspect --layer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from engine.humanize import human_bytes
from engine.inspection import (
    FileEntry,
    TreeNode,
    build_tree,
    entry_columns,
    entry_name,
    matching_paths,
    tree_rows,
)
from vinci_tui.widgets.filter import FilterBar

# Above this many entries a layer opens with only its top level expanded: building tens of
# thousands of rows up front would stall the first paint for no one's benefit.
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


class FileTable(DataTable[Text]):
    HELP = (
        "The selected layer's files as a tree: mode, uid:gid, size, name (with link target) "
        "and the spec node that put it there. Sizes of directories are totals below them."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open/view", id="contents.open"),
        Binding("space", "fold", "Fold", show=False, id="contents.fold"),
        Binding("s", "sort", "Sort name/size", id="contents.sort"),
        Binding("e", "expand_all", "Expand all", show=False, id="contents.expand-all"),
        Binding("E", "collapse_all", "Collapse all", show=False, id="contents.collapse-all"),
        Binding("right_square_bracket", "part(1)", "Next part", show=False, id="contents.next"),
        Binding("left_square_bracket", "part(-1)", "Prev part", show=False, id="contents.prev"),
        Binding("j", "cursor_down", "Down", show=False, id="contents.down"),
        Binding("k", "cursor_up", "Up", show=False, id="contents.up"),
        Binding("g", "scroll_top", "Top", show=False, id="contents.top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="contents.bottom"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", cell_padding=0, zebra_stripes=False)
        self.root: TreeNode | None = None
        self.sort_by = "name"
        self.expanded: set[str] = set()
        self.needle = ""
        self.origin_prefix = ""
        self.owner_width = 8
        self._by_path: dict[str, TreeNode] = {}

    def on_mount(self) -> None:
        self._columns()

    def on_resize(self, event: events.Resize) -> None:
        self._columns()
        self.render_rows()

    def _columns(self) -> None:
        width = self.scrollable_content_region.width or self.size.width or 80
        owner = self.owner_width
        rest = width - 11 - owner - 9 - 1
        origin = max(14, rest * 2 // 5) if width >= 70 else 0
        name = max(12, rest - origin)
        wanted = [("mode", 11), ("owner", owner), ("size", 9), ("name", name)]
        if origin:
            wanted.append(("origin", origin))
        current = [(str(k.value), c.width) for k, c in self.columns.items()]
        if current == wanted:
            return
        self.clear(columns=True)
        headers = {"mode": "mode", "owner": "uid:gid", "size": "size", "name": "name"}
        for key, w in wanted:
            self.add_column(headers.get(key, key), key=key, width=w)

    def show_entries(
        self, entries: Sequence[FileEntry], node_label: str = "", *, keep: bool = False
    ) -> None:
        """Show `entries`; origins inside the node `node_label` ("layers[0].combined") are
        shown without its "layers[0]." (the heading names the layer).

        `keep`: the same layer rebuilt, so the user's place stays: the cursor on its path,
        what was collapsed stays collapsed (new directories follow the usual rule), and the
        scroll offset."""
        before = self.root
        old_dirs = {n.path for n in self._dirs(before)} if keep and before is not None else None
        cursor = self.current_path() if keep else None
        scroll = (self.scroll_x, self.scroll_y)
        self.origin_prefix = node_label.split(".", 1)[0] + "." if node_label else ""
        self.owner_width = max(
            [8] + [len(f"{e.uid}:{e.gid}") + 1 for e in entries]  # one cell of gap
        )
        self._columns()
        self.root = build_tree(entries)
        dirs = {n.path for n in self._dirs(self.root)}
        fresh = dirs if len(entries) <= EXPAND_ALL_UP_TO else set()
        if old_dirs is not None:
            self.expanded = (self.expanded & dirs) | (fresh - old_dirs)
        else:
            self.expanded = fresh
        self.render_rows()
        if cursor is not None and cursor in self._by_path:
            self.move_cursor(row=self.get_row_index(cursor), scroll=False)
            # After the refresh: the new rows' height is known only then.
            self.call_after_refresh(self.scroll_to, *scroll, animate=False)
        elif self.row_count:
            self.move_cursor(row=0)

    def clear_entries(self) -> None:
        self.root = None
        self.render_rows()

    def _dirs(self, node: TreeNode) -> list[TreeNode]:
        out = []
        for child in node.children.values():
            if child.children:
                out.append(child)
                out.extend(self._dirs(child))
        return out

    def render_rows(self) -> None:
        keep = self.current_path()
        self.clear()
        self._by_path.clear()
        if self.root is None:
            return
        only = matching_paths(self.root, self.needle) if self.needle else None
        show_origin = "origin" in [str(k.value) for k in self.columns]
        needle = self.needle.lower()
        for row in tree_rows(self.root, self.sort_by, lambda p: p in self.expanded, only):
            node = row.node
            mode, owner, size = entry_columns(node.entry)
            if node.entry is None:
                mode, owner = "d", ""  # implied by the paths below it, not in the layer
            if node.children:
                size = human_bytes(node.total)
                fold = "▾ " if (only is not None or node.path in self.expanded) else "▸ "
            else:
                fold = ""
            kind = node.entry.type if node.entry is not None else "dir"
            name = Text(row.guides, style="dim")
            shown = Text(entry_name(node), style=TYPE_STYLES.get(kind, ""))
            if needle:
                shown.highlight_words([needle], style="reverse", case_sensitive=False)
            name.append(fold, style="dim")
            name.append_text(shown)
            cells = [
                Text(mode, style="dim"),
                Text(owner),
                Text(f"{size:>8} "),
                name,
            ]
            if show_origin:
                origin = "(implied)"
                if node.entry is not None:
                    origin = node.entry.origin.removeprefix(self.origin_prefix)
                cells.append(Text(origin, style="dim", overflow="ellipsis", no_wrap=True))
            self.add_row(*cells, key=node.path)
            self._by_path[node.path] = node
        if keep in self._by_path:
            self.move_cursor(row=self.get_row_index(keep))

    def current_path(self) -> str | None:
        if not self.row_count:
            return None
        value = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return value

    def current_node(self) -> TreeNode | None:
        path = self.current_path()
        return self._by_path.get(path) if path is not None else None

    class ViewFile(Message):
        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

    class PartChange(Message):
        def __init__(self, step: int) -> None:
            super().__init__()
            self.step = step

    def action_fold(self) -> None:
        node = self.current_node()
        if node is None or not node.children:
            return
        self.expanded.symmetric_difference_update({node.path})
        self.render_rows()

    def action_open(self) -> None:
        node = self.current_node()
        if node is None:
            return
        if node.children:
            self.action_fold()
        elif node.entry is not None and node.entry.type == "file":
            self.post_message(self.ViewFile(node.path))
        else:
            self.app.bell()

    def action_sort(self) -> None:
        self.sort_by = "size" if self.sort_by == "name" else "name"
        self.render_rows()
        self.post_message(self.SortChanged(self.sort_by))

    def action_expand_all(self) -> None:
        if self.root is not None:
            self.expanded = {n.path for n in self._dirs(self.root)}
            self.render_rows()

    def action_collapse_all(self) -> None:
        self.expanded = set()
        self.render_rows()

    def action_part(self, step: int) -> None:
        self.post_message(self.PartChange(step))

    class SortChanged(Message):
        def __init__(self, by: str) -> None:
            super().__init__()
            self.by = by


class ContentsView(Vertical):
    """The Contents pane: a heading, the filter bar and the file table."""

    def __init__(self, *, blink: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self._blink = blink

    def compose(self) -> ComposeResult:
        yield Static("", id="contents-heading", classes="pane-heading")
        yield FilterBar("filter paths…", id="contents-filter", blink=self._blink)
        yield FileTable(id="contents-table")

    @property
    def table(self) -> FileTable:
        return self.query_one(FileTable)

    def set_heading(self, text: Text | str) -> None:
        self.query_one("#contents-heading", Static).update(text)

    def open_filter(self) -> None:
        self.query_one(FilterBar).open()

    def on_filter_bar_filter_changed(self, event: FilterBar.FilterChanged) -> None:
        self.table.needle = event.text
        self.table.render_rows()
