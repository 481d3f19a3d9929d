"""Modal screens: confirm a destructive or disruptive action, gc's options, help for a pane,
a file's text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from engine.cache.maintenance import DEFAULT_KEEP_DAYS, parse_keep_days, parse_size
from engine.errors import InvalidValue
from engine.humanize import human_bytes
from engine.tar.read import FileContent


class ConfirmScreen(ModalScreen[bool]):
    """Asks a yes/no question; dismisses with True only on an explicit yes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, detail: str = "", yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.detail = detail
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm", classes="dialog"):
            yield Static(Text(self.question, style="bold"), id="confirm-question")
            if self.detail:
                yield Static(Text(self.detail), id="confirm-detail")
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class AskScreen(ModalScreen[str | None]):
    """Asks for one line of text; enter answers it, escape answers None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="ask.cancel"),
    ]

    def __init__(self, question: str, placeholder: str = "") -> None:
        super().__init__()
        self.question = question
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="ask", classes="dialog"):
            yield Static(Text(self.question, style="bold"))
            yield Input(placeholder=self.placeholder, id="ask-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class GcOptions:
    """What a garbage collection keeps, as `vinci cache gc --keep-days --max-size` says it."""

    keep_days: float
    max_bytes: int | None


class GcOptionsScreen(ModalScreen[GcOptions | None]):
    """Asks for gc's keep-days and size budget, parsed as the command line parses them
    (engine.cache.maintenance); enter asks for a preview, escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="gc.cancel"),
    ]

    def __init__(self, keep_days: str = "30", max_size: str = "") -> None:
        super().__init__()
        self.keep_days = keep_days
        self.max_size = max_size

    def compose(self) -> ComposeResult:
        with Vertical(id="gc-options", classes="dialog"):
            yield Static(Text("Collect garbage: what to keep", style="bold"))
            yield Static(
                Text(
                    "As `vinci cache gc`: the newest build of every spec is always kept.",
                    style="dim",
                )
            )
            yield Static("keep builds from the last DAYS (--keep-days)")
            yield Input(self.keep_days, placeholder="30", id="gc-keep-days")
            yield Static("size budget (--max-size), e.g. 5G; empty for none")
            yield Input(self.max_size, placeholder="no budget", id="gc-max-size")
            yield Static("", id="gc-problem")
            yield Static(Text("enter previews what goes · escape cancels", style="dim"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        days = self.query_one("#gc-keep-days", Input).value
        size = self.query_one("#gc-max-size", Input).value
        try:
            options = GcOptions(
                parse_keep_days(days) if days.strip() else DEFAULT_KEEP_DAYS,
                parse_size(size) if size.strip() else None,
            )
        except InvalidValue as e:
            self.query_one("#gc-problem", Static).update(Text(str(e), style="bold red"))
            return
        self.dismiss(options)

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Help for the focused pane: what it shows, its keys (with binding ids), global keys."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "dismiss_help", "Close", id="help.close"),
    ]

    def __init__(
        self,
        title: str,
        description: str,
        sections: Sequence[tuple[str, Sequence[tuple[str, str, str]]]],
        footer: str = "",
    ) -> None:
        super().__init__()
        self.title_text = title
        self.description = description
        self.sections = sections
        self.footer = footer

    def compose(self) -> ComposeResult:
        with Vertical(id="help", classes="dialog"):
            yield Static(Text(self.title_text, style="bold"), id="help-title")
            with VerticalScroll(id="help-body"):
                yield Static(Text(self.description), id="help-description")
                for name, rows in self.sections:
                    table = Table.grid(padding=(0, 2))
                    table.add_column(style="bold cyan", no_wrap=True)
                    table.add_column()
                    table.add_column(style="dim", no_wrap=True)
                    for keys, description, binding_id in rows:
                        table.add_row(keys, description, binding_id)
                    yield Static(Text(name, style="bold underline"), classes="help-section")
                    yield Static(table)
                if self.footer:
                    yield Static(Text(self.footer, style="dim"), classes="help-section")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)


class FileScreen(ModalScreen[None]):
    """A file's contents as the layer holds them (text only, capped)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", id="file.close"),
    ]

    def __init__(self, path: str, content: FileContent | None, error: str = "") -> None:
        super().__init__()
        self.path = path
        self.content = content
        self.error = error

    def compose(self) -> ComposeResult:
        with Vertical(id="file", classes="dialog"):
            yield Static(Text(self.path, style="bold"), id="file-title")
            with VerticalScroll(id="file-body"):
                yield Static(self._body(), id="file-text")
            yield Static(Text(self._note(), style="dim"), id="file-note")

    def _body(self) -> Text:
        if self.error:
            return Text(self.error, style="red")
        content = self.content
        if content is None:
            return Text("not in this layer", style="red")
        if content.binary:
            return Text(f"binary file, {human_bytes(content.entry.size)}", style="yellow")
        return Text(content.text)

    def _note(self) -> str:
        content = self.content
        if content is None:
            return "escape closes"
        note = f"{human_bytes(content.entry.size)}"
        if content.truncated and not content.binary:
            note += f", showing the first {human_bytes(len(content.data))}"
        return note + " · escape closes"

    def action_close(self) -> None:
        self.dismiss(None)
