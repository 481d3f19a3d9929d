"""The filter line a pane opens with `/`: filters as you type, enter keeps it, escape clears.

A pane that can be filtered (contents, cache, log) contains one FilterBar, hidden until
opened, and handles `FilterBar.FilterChanged` to re-render itself.
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input


class FilterBar(Input):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear_filter", "Clear filter", id="filter.clear"),
    ]

    class FilterChanged(Message):
        def __init__(self, bar: FilterBar, text: str) -> None:
            super().__init__()
            self.bar = bar
            self.text = text

        @property
        def control(self) -> FilterBar:
            return self.bar

    def __init__(self, placeholder: str, *, id: str | None = None, blink: bool = True) -> None:
        super().__init__(placeholder=placeholder, id=id, classes="filter-bar")
        self.cursor_blink = blink
        self.display = False

    def open(self) -> None:
        self.display = True
        self.focus()

    def _back(self) -> None:
        parent = self.parent
        target = None
        if parent is not None:
            target = next((w for w in parent.children if w is not self and w.can_focus), None)
        if target is not None:
            target.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.FilterChanged(self, event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not self.value:
            self.display = False
        self._back()

    def action_clear_filter(self) -> None:
        self.value = ""
        self.display = False
        self._back()
