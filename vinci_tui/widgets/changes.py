"""The Changes pane: why this build's image differs from the previous build of the spec.

The previous build is the one before in this session or, for the first build of a session,
the image a previous session (or `vinci build`) left in the spec's layout, so the question
"why did the digest change?" has an answer after a restart too. The comparison is the
library's (engine.compare, as `vinci diff` prints it): config and manifest fields, layers
added or removed, and per changed layer the files with their cause (content, mode, owner,
link target).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import RichLog, Static

STYLES = {"+": "green", "-": "red", "~": "yellow"}


class ChangesLog(RichLog):
    HELP = (
        "Why this build's image differs from the previous build of the spec (in this "
        "session, or the one left in the spec's layout before it): fields, layers, and the "
        "files in each changed layer with the cause of each change."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "scroll_down", "Down", show=False, id="changes.down"),
        Binding("k", "scroll_up", "Up", show=False, id="changes.up"),
        Binding("g", "scroll_home", "Top", show=False, id="changes.top"),
        Binding("G", "scroll_end", "Bottom", show=False, id="changes.bottom"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, wrap=False, markup=False, highlight=False)
        self.can_focus = True
        self.text = ""

    def show(self, text: str) -> None:
        self.text = text
        self.clear()
        for line in text.splitlines():
            mark = line.strip()[:1]
            self.write(Text(line, style=STYLES.get(mark, "")))


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

    def show(self, since: str, text: str, identical: bool) -> None:
        heading = Text.assemble(("since ", "dim"), (since, "bold"))
        heading.append(
            ":  identical, same manifest" if identical else ":  changed",
            style="green" if identical else "yellow",
        )
        self.query_one("#changes-heading", Static).update(heading)
        self.query_one(ChangesLog).show(text)
