"""The Log pane: every engine event and workbench action, as lines, filterable with `/`.

Each line starts with the wall-clock time it was logged (HH:MM:SS, local time), so a line
can be matched with what happened around it. A filter highlights the matches in place
(context kept), or with `m` shows only the matching lines. The lines are kept here (the
newest MAX_LINES) and re-rendered on a change of filter; RichLog itself cannot filter.
"""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import RichLog, Static

from vinci_tui.clock import Clock
from vinci_tui.widgets.filter import FilterBar

MAX_LINES = 5000

LEVEL_STYLES = {
    "error": "bold red",
    "warning": "yellow",
    "event": "",
    "watch": "magenta",
    "diff": "cyan",
}


class BuildLog(RichLog):
    HELP = (
        "Every engine event and workbench action. / filters: matches are highlighted; "
        "m shows only the matching lines (again: all lines)."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "toggle_only", "Only matching", id="log.only-matching"),
        Binding("j", "scroll_down", "Down", show=False, id="log.down"),
        Binding("k", "scroll_up", "Up", show=False, id="log.up"),
        Binding("g", "scroll_home", "Top", show=False, id="log.top"),
        Binding("G", "scroll_end", "Bottom", show=False, id="log.bottom"),
    ]

    def __init__(self, clock: Clock | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id, wrap=False, markup=False, highlight=False, max_lines=MAX_LINES)
        self.clock = clock or Clock()
        self.lines_kept: list[tuple[str, str]] = []
        self.stamps: list[str] = []  # beside lines_kept: when each line was logged
        self.needle = ""
        self.only_matching = False
        self.can_focus = True

    def add(self, level: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.clock.wall()))
        self.lines_kept.append((level, text))
        self.stamps.append(stamp)
        if len(self.lines_kept) > MAX_LINES:
            del self.lines_kept[: len(self.lines_kept) - MAX_LINES]
            del self.stamps[: len(self.stamps) - MAX_LINES]
        line = self._line_text(level, text, stamp)
        if line is not None:
            self.write(line)

    def _line_text(self, level: str, text: str, stamp: str) -> Text | None:
        needle = self.needle.lower()
        if needle and self.only_matching and needle not in text.lower():
            return None
        body = Text(text, style=LEVEL_STYLES.get(level, ""))
        if needle:
            body.highlight_words([self.needle], style="reverse", case_sensitive=False)
        return Text.assemble((stamp + " ", "dim"), body)

    def rerender(self) -> None:
        self.clear()
        for (level, text), stamp in zip(self.lines_kept, self.stamps, strict=True):
            line = self._line_text(level, text, stamp)
            if line is not None:
                self.write(line)

    def matching(self) -> list[str]:
        """The lines the current filter shows (all of them without a filter)."""
        needle = self.needle.lower()
        return [t for _, t in self.lines_kept if not needle or needle in t.lower()]

    def action_toggle_only(self) -> None:
        self.only_matching = not self.only_matching
        self.rerender()
        self.post_message(self.ModeChanged())

    class ModeChanged(Message):
        """The filter mode changed (highlight or only matching)."""


class LogView(Vertical):
    def __init__(
        self, clock: Clock | None = None, *, blink: bool = True, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self._blink = blink
        self._clock = clock

    def compose(self) -> ComposeResult:
        yield Static("", id="log-heading", classes="pane-heading")
        yield FilterBar("filter log…", id="log-filter", blink=self._blink)
        yield BuildLog(self._clock, id="log")

    @property
    def log_widget(self) -> BuildLog:
        return self.query_one(BuildLog)

    def open_filter(self) -> None:
        self.query_one(FilterBar).open()

    def on_filter_bar_filter_changed(self, event: FilterBar.FilterChanged) -> None:
        self.log_widget.needle = event.text
        self.log_widget.rerender()
        self.update_heading()

    def on_build_log_mode_changed(self, event: BuildLog.ModeChanged) -> None:
        self.update_heading()

    def update_heading(self) -> None:
        log = self.log_widget
        if not log.needle:
            text = Text(f"{len(log.lines_kept)} lines", style="dim")
        else:
            shown = len(log.matching())
            mode = "only matching" if log.only_matching else "highlighted"
            text = Text.assemble(
                (f"filter {log.needle!r}: ", "bold"),
                f"{shown} of {len(log.lines_kept)} lines match ({mode}; m toggles)",
            )
        self.query_one("#log-heading", Static).update(text)
