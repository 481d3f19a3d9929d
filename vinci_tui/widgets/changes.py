"""The Changes pane: why this build's image differs from the previous build of the spec.

The previous build is the one before in this session or, for the first build of a session,
the image a previous session (or `vinci build`) left in the spec's layout, so the question
"why did the digest change?" has an answer after a restart too. The comparison is the
library's (engine.compare, as `vinci diff` prints it): config keys and manifest fields, layers
added or removed, codec-only changes (same tar bytes, other compressed bytes), and per changed
layer the files with their cause (content, mode, owner, link target); an inline `contents`
file's change comes with a short text diff. Each line knows the spec line that caused it
(vinci_tui.changes): Enter shows that line in the Edit pane.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from vinci_tui.changes import ChangeRow

STYLES = {"+": "green", "-": "red", "~": "yellow"}
GUTTER = 6  # ":1234 "


class ChangesLog(DataTable[Text]):
    HELP = (
        "Why this build's image differs from the previous build of the spec (in this "
        "session, or the one left in the spec's layout before it): config keys, manifest "
        "fields, layers added or removed, codec-only changes (same tar bytes, other "
        "compressed bytes), and the files in each changed layer with the cause of each "
        "change; an inline `contents` file's change shows a text diff. A line that a spec "
        "line caused shows that :line at its left; Enter shows it in the Edit pane."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "go_to", "Spec line", id="changes.go-to"),
        Binding("j", "cursor_down", "Down", show=False, id="changes.down"),
        Binding("k", "cursor_up", "Up", show=False, id="changes.up"),
        Binding("g", "scroll_top", "Top", show=False, id="changes.top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="changes.bottom"),
    ]

    class GoTo(Message):
        """Enter on a change: show the spec line that caused it in the Edit pane."""

        def __init__(self, line: int, column: int) -> None:
            super().__init__()
            self.line = line
            self.column = column

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            id=id, cursor_type="row", show_header=False, cell_padding=0, zebra_stripes=False
        )
        self.text = ""
        self.change_rows: list[ChangeRow] = []

    def show(self, text: str, rows: Sequence[ChangeRow] = ()) -> None:
        self.text = text
        self.change_rows = list(rows) or [
            ChangeRow(line, "", line.strip()[:1], None) for line in text.splitlines()
        ]
        self.clear(columns=True)
        cells = [self._cell(row) for row in self.change_rows]
        # A gutter with the spec line each change links to, as the Spec pane shows positions.
        self.add_column("line", key="line", width=GUTTER)
        self.add_column("change", key="change", width=max((c.cell_len for c in cells), default=1))
        for i, (row, cell) in enumerate(zip(self.change_rows, cells, strict=True)):
            at = f":{row.pos.line}" if row.pos is not None and row.kind != "diff" else ""
            self.add_row(Text(f"{at:>{GUTTER - 1}} ", style="dim"), cell, key=str(i))
        # The cursor starts on the first change that Enter can follow.
        first = next((i for i, r in enumerate(self.change_rows) if r.pos is not None), 0)
        self.move_cursor(row=first, animate=False, scroll=False)

    def _cell(self, row: ChangeRow) -> Text:
        style = STYLES.get(row.mark, "bold" if row.kind == "heading" else "")
        if row.kind == "diff":
            style = STYLES.get(row.mark, "dim")
        return Text(row.text, style=style, no_wrap=True)

    def action_go_to(self) -> None:
        if not self.change_rows:
            return
        row = self.change_rows[min(self.cursor_row, len(self.change_rows) - 1)]
        if row.pos is None:
            self.app.bell()  # a heading, or a change no spec line causes (the timestamp)
            return
        self.post_message(self.GoTo(row.pos.line, row.pos.column))


class ChangesView(Vertical):
    def compose(self) -> ComposeResult:
        yield Static(
            Text(
                "No comparison yet: it comes with the second build, or the first one when "
                "the spec's layout holds an earlier image.",
                style="dim",
            ),
            id="changes-heading",
            classes="pane-heading",
        )
        yield ChangesLog(id="changes")

    def show(self, since: str, text: str, identical: bool, rows: Sequence[ChangeRow] = ()) -> None:
        heading = Text.assemble(("since ", "dim"), (since, "bold"))
        heading.append(
            ":  identical, same manifest" if identical else ":  changed",
            style="green" if identical else "yellow",
        )
        self.query_one("#changes-heading", Static).update(heading)
        self.query_one(ChangesLog).show(text, rows)
