"""The Spec pane: the spec as a tree of its keys and layer nodes, each with its YAML position.

Re-parsing the spec (watch mode) rebuilds the tree; the expanded nodes and the cursor are kept
by their stable keys ("layers[2].combined"), since Textual's Tree has no notion of identity
across a rebuild. A spec that no longer loads shows its problems at the top, positioned, over
the last good tree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from engine.errors import SpecProblem
from engine.spec.model import Spec
from vinci_tui.specview import SpecItem, spec_items

DEFAULT_EXPANDED = frozenset({"config", "layers", "problems"})

KIND_STYLES = {
    "file": "bold cyan",
    "directory": "bold blue",
    "symlink": "bold magenta",
    "combined": "bold yellow",
    "import": "bold green",
    "import-oci": "bold green",
    "problem": "bold red",
}


class SpecTree(Tree[SpecItem]):
    """The spec's tree. Highlighting a node inside a layer selects that layer everywhere."""

    HELP = (
        "The spec as a tree: image, platform, config and every layer node, with its kind, "
        "key fields and file:line:col. Moving onto a layer selects it in every pane. Enter "
        "on a problem shows it in the Edit pane; e opens $EDITOR at the node."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False, id="spec.down"),
        Binding("k", "cursor_up", "Up", show=False, id="spec.up"),
        Binding("g", "scroll_home", "Top", show=False, id="spec.top"),
        Binding("G", "scroll_end", "Bottom", show=False, id="spec.bottom"),
    ]

    class LayerSelected(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("spec", id=id)
        self.show_root = True
        self.guide_depth = 3
        self.problems: tuple[SpecProblem, ...] = ()
        self._populated = False
        self._pending_cursor: str | None = None
        self.failed: set[int] = set()  # layer nodes the last build failed on
        # `/`: only the nodes whose line contains the needle, and the nodes above them. The
        # user's expansion from before the filter is kept aside and comes back after it.
        self.needle = ""
        self._unfiltered: set[str] | None = None

    def mark_failed(self, indexes: set[int]) -> None:
        """Mark the layer nodes the last build failed on (an empty set clears the marks)."""
        if indexes == self.failed:
            return
        self.failed = set(indexes)
        for node in self._walk():
            item = node.data
            if item is not None and item.layer is not None and item.key.count("[") == 1:
                node.set_label(self.item_label(item))

    def show_spec(self, spec: Spec | None, problems: Sequence[SpecProblem] = ()) -> None:
        """Show `spec` (the last good one) and any problems of the current file."""
        expanded, cursor = self._remember()
        self.problems = tuple(problems)
        self.clear()
        self.root.set_label(self._root_label(spec))
        self.root.data = SpecItem("spec", "spec", "", None, None)
        if problems:
            group = self.root.add(
                Text.assemble(
                    ("✗ ", "bold red"), (f"{len(problems)} problem(s) in the spec", "red")
                ),
                data=SpecItem("problems", "problems", "", None, None),
                expand=True,
            )
            for i, p in enumerate(problems):
                group.add_leaf(
                    Text.assemble((f"{p.position}", "bold red"), " ", p.message),
                    data=SpecItem(f"problem[{i}]", "problem", p.message, p.position, None),
                )
        if spec is not None:
            for item in spec_items(spec):
                self._add(self.root, item, expanded)
        self.root.expand()
        self._populated = spec is not None
        self._restore(cursor)

    def _root_label(self, spec: Spec | None) -> Text:
        if spec is None:
            return Text("(no spec loaded)", style="dim")
        return Text.assemble((spec.display_path, "bold"), ("  spec-version v1", "dim"))

    def _add(self, parent: TreeNode[SpecItem], item: SpecItem, expanded: set[str]) -> None:
        if self.needle and not self._matches(item):
            return
        label = self.item_label(item)
        if item.children:
            open_ = item.key in expanded or bool(self.needle)
            node = parent.add(label, data=item, expand=open_)
            for child in item.children:
                self._add(node, child, expanded)
        else:
            parent.add_leaf(label, data=item)

    def _matches(self, item: SpecItem) -> bool:
        needle = self.needle.lower()
        if needle in self.item_label(item).plain.lower():
            return True
        return any(self._matches(child) for child in item.children)

    def set_needle(self, needle: str, spec: Spec | None) -> None:
        """Filter the tree by `needle` ("" shows it all again, as it was)."""
        if needle and self._unfiltered is None:
            self._unfiltered = self._remember()[0]
        self.needle = needle
        self.show_spec(spec, self.problems)
        if not needle:
            self._unfiltered = None

    def item_label(self, item: SpecItem) -> Text:
        style = KIND_STYLES.get(item.kind, "bold")
        text = Text()
        if item.layer is not None and item.key.count("[") == 1:
            text.append(f"{item.layer} ", style="dim")
            if item.layer in self.failed:
                # Before the kind, where a narrow pane still shows it.
                text.append("✗ failed ", style="bold red")
        text.append(item.kind, style=style)
        if item.text:
            text.append(" " + item.text)
        if item.pos is not None:
            text.append(f"  :{item.pos.line}:{item.pos.column}", style="dim")
        return text

    def _walk(self, node: TreeNode[SpecItem] | None = None) -> Iterator[TreeNode[SpecItem]]:
        node = node or self.root
        yield node
        for child in node.children:
            yield from self._walk(child)

    def _remember(self) -> tuple[set[str], str | None]:
        if not self._populated:
            return set(DEFAULT_EXPANDED), None
        if self._unfiltered is not None:
            expanded = set(self._unfiltered)
        else:
            expanded = {
                n.data.key for n in self._walk() if n.data is not None and n.is_expanded
            } | {"problems"}
        if self._pending_cursor is not None:
            return expanded, self._pending_cursor  # a move not yet made is where it will be
        cursor = self.cursor_node
        return expanded, cursor.data.key if cursor is not None and cursor.data else None

    def _restore(self, key: str | None) -> None:
        if key is not None and self.node_for_key(key) is not None:
            self._move_to(key)

    def _move_to(self, key: str) -> None:
        """Put the cursor on the node with `key`, once the tree has been laid out: scrolling
        it into view needs the tree's final size."""

        def move() -> None:
            if self._pending_cursor != key:
                return  # a later move replaced this one
            self._pending_cursor = None
            node = self.node_for_key(key)
            if node is not None:
                self._tree_lines  # noqa: B018 - computes each node's line, for move_cursor
                self.move_cursor(node)

        self._pending_cursor = key
        self.call_after_refresh(move)

    def node_for_key(self, key: str) -> TreeNode[SpecItem] | None:
        for node in self._walk():
            if node.data is not None and node.data.key == key:
                return node
        return None

    def select_layer(self, index: int) -> None:
        """Put the cursor on layer `index`, unless it is already inside that layer."""
        current = self.cursor_node
        if current is not None and current.data is not None and current.data.layer == index:
            return
        for node in self._walk():
            if node.data is not None and node.data.layer == index:
                parent = node.parent
                while parent is not None:
                    parent.expand()
                    parent = parent.parent
                self._move_to(node.data.key)
                return

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[SpecItem]) -> None:
        item = event.node.data
        # Only the user's moves select a layer: rebuilding the tree also moves the cursor.
        if self.has_focus and item is not None and item.layer is not None:
            self.post_message(self.LayerSelected(item.layer))

    class GoTo(Message):
        """Enter on a problem (or any node with a position): show it in the Edit pane."""

        def __init__(self, line: int, column: int) -> None:
            super().__init__()
            self.line = line
            self.column = column

    def on_tree_node_selected(self, event: Tree.NodeSelected[SpecItem]) -> None:
        item = event.node.data
        # A problem has nothing to fold: enter takes you to where it is, to fix it. Other
        # nodes keep enter's toggle (their position is one `e` away).
        if item is not None and item.kind == "problem" and item.pos is not None:
            self.post_message(self.GoTo(item.pos.line, item.pos.column))
