"""The Editor pane: the spec's text, edited in the workbench.

As you type, the text is validated through the library's own spec loader (after a short
pause, sources not looked at, nothing built) and each problem is drawn at the end of its line
with its column. ctrl+s writes the file and the app rebuilds at once. Tab after a partial key
completes it from the spec's key tables (engine/spec/fields.py) for where the cursor is: the
top level, `config`, or a layer of a given kind.

YAML is coloured by a small line highlighter here (keys, comments, strings, numbers, list
dashes) rather than tree-sitter, which the workbench does not depend on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.strip import Strip
from textual.timer import Timer
from textual.widgets import Static, TextArea

from engine.errors import SpecError, SpecProblem
from engine.spec.fields import CONFIG, LAYER_KINDS, TOP
from engine.spec.load import load_spec_text

VALIDATE_AFTER = 0.3  # seconds of quiet typing before the text is validated

_KEY = re.compile(r"^(\s*(?:-\s+)?)([A-Za-z_][\w.-]*)(\s*:)(?=\s|$)")
_FLOW_KEY = re.compile(r"[{,]\s*([A-Za-z_][\w.-]*)\s*:")
_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'")
_NUMBER = re.compile(r"(?<![\w.-])(?:0o?[0-7]+|\d+(?:\.\d+)?)(?![\w.-])")
_WORD = re.compile(r"(?<![\w.-])(?:true|false|null|yes|no)(?![\w.-])")
_PARTIAL = re.compile(r"^(\s*(?:-\s+)?)([A-Za-z_][\w-]*)$")


def highlight_yaml(line: str) -> list[tuple[int, int, str]]:
    """(start, end, name) highlights of one YAML line, in characters."""
    out: list[tuple[int, int, str]] = []
    code, comment = line, -1
    quote = ""
    for i, c in enumerate(line):  # a # outside quotes, after a space or at the start
        if quote:
            quote = "" if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            comment = i
            code = line[:i]
            break
    key = _KEY.match(code)
    if key is not None:
        if key.group(1).strip() == "-":
            dash = key.group(1).index("-")
            out.append((dash, dash + 1, "keyword"))
        out.append((key.start(2), key.end(2), "yaml.field"))
    elif code.lstrip().startswith("- "):
        dash = code.index("-")
        out.append((dash, dash + 1, "keyword"))
    for match in _FLOW_KEY.finditer(code):
        out.append((match.start(1), match.end(1), "yaml.field"))
    strings = [(m.start(), m.end()) for m in _STRING.finditer(code)]
    out.extend((a, b, "string") for a, b in strings)

    def outside(m: re.Match[str]) -> bool:
        return not any(a <= m.start() < b for a, b in strings)

    out.extend((m.start(), m.end(), "number") for m in _NUMBER.finditer(code) if outside(m))
    out.extend((m.start(), m.end(), "boolean") for m in _WORD.finditer(code) if outside(m))
    if comment >= 0:
        out.append((comment, len(line), "comment"))
    return out


def keys_for(lines: Sequence[str], row: int) -> tuple[str, ...]:
    """The keys a spec allows at line `row`, from the lines above it: the top level's,
    config's, or those of the layer kind the line is inside."""
    indent = len(lines[row]) - len(lines[row].lstrip(" -"))
    if indent == 0:
        return tuple(f.name for f in TOP)
    for above in reversed(lines[:row]):
        stripped = above.lstrip(" -")
        if not stripped or stripped.startswith("#"):
            continue
        level = len(above) - len(stripped)
        if level >= indent:
            continue
        name = stripped.split(":", 1)[0].strip()
        if name == "config":
            return tuple(f.name for f in CONFIG)
        if name in LAYER_KINDS:
            return tuple(f.name for f in LAYER_KINDS[name][0])
        if name in ("layers", "combined"):
            return tuple(LAYER_KINDS)
        return ()
    return ()


class SpecEditor(TextArea):
    """The spec's text, with its problems drawn at the end of their lines."""

    HELP = (
        "The spec's text. Problems appear at the end of their line as you type (validated by "
        "the spec loader, nothing built); ctrl+s saves and builds; tab completes a key."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save & build", id="editor.save"),
        Binding("tab", "complete", "Complete key", show=False, id="editor.complete"),
    ]

    class Saved(Message):
        """The text was written to the spec file."""

    class Checked(Message):
        """The text was validated; `problems` is empty when it loads."""

        def __init__(self, problems: tuple[SpecProblem, ...]) -> None:
            super().__init__()
            self.problems = problems

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", soft_wrap=False, show_line_numbers=True, tab_behavior="focus", id=id)
        self.theme = "monokai"
        self.path: Path | None = None
        self.display_name = ""
        self.problems: tuple[SpecProblem, ...] = ()
        self.saved_text = ""
        self._timer: Timer | None = None
        self.completions: tuple[str, ...] = ()  # the last tab's candidates, when several

    @property
    def modified(self) -> bool:
        return self.text != self.saved_text

    def open_file(self, path: Path, display: str) -> None:
        """Show `path`'s text (when it has no unsaved edits, or is another file)."""
        if path == self.path and self.modified:
            return
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            if path == self.path:
                # Deleted or renamed under us: keep the text, as unsaved, so ctrl+s can
                # write it back.
                self.saved_text = ""
                return
            text = ""
        except (OSError, UnicodeDecodeError):
            text = ""
        self.path, self.display_name = path, display
        if text != self.text:
            self.load_text(text)
        self.saved_text = text
        self.validate_now()

    # -- validation ---------------------------------------------------------------------------

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(VALIDATE_AFTER, self.validate_now)

    def validate_now(self) -> None:
        self._timer = None
        if self.path is None:
            return
        try:
            load_spec_text(
                self.text.encode("utf-8"),
                self.path.resolve(),
                self.display_name,
                check_sources=False,
            )
            problems: tuple[SpecProblem, ...] = ()
        except SpecError as e:
            problems = tuple(e.problems)
        self.problems = problems
        self._line_cache.clear()
        self.refresh()
        self.post_message(self.Checked(problems))

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        row = y + int(self.scroll_y)
        here = [p for p in self.problems if p.position.line == row + 1]
        if not here:
            return strip
        problem = here[0]
        note = f" ✗ {problem.position.column}: {problem.message} "
        width = strip.cell_length
        text_end = (
            self.gutter_width + len(self.document[row]) + 2 if row < self.document.line_count else 0
        )
        room = width - text_end
        if room < 12:
            return strip
        note = note[:room] if len(note) <= room else note[: room - 1] + "…"
        style = Style(color="white", bgcolor="dark_red", bold=True)
        keep = strip.crop(0, width - len(note))
        return Strip.join([keep, Strip([Segment(note, style)])])

    # -- highlighting -------------------------------------------------------------------------

    def _build_highlight_map(self) -> None:
        self._line_cache.clear()
        self._highlights.clear()
        for row in range(self.document.line_count):
            line = self.document[row]
            for start, end, name in highlight_yaml(line):
                # The renderer counts bytes, as tree-sitter does.
                a = len(line[:start].encode("utf-8"))
                b = len(line[:end].encode("utf-8"))
                self._highlights[row].append((a, b, name))

    # -- actions ------------------------------------------------------------------------------

    def action_save(self) -> None:
        if self.path is None:
            return
        text = self.text
        tmp = self.path.with_name(f".{self.path.name}.vinci-tmp")
        tmp.write_text(text, "utf-8")
        tmp.replace(self.path)  # atomic: a watcher never reads half a file
        self.saved_text = text
        self.post_message(self.Saved())

    def action_complete(self) -> None:
        """Complete the key being typed at the cursor; with several candidates, say them."""
        row, col = self.cursor_location
        line = self.document[row]
        partial = _PARTIAL.match(line[:col])
        if partial is None or col != len(line.rstrip()):
            self.app.action_focus_next()
            return
        lines = [self.document[i] for i in range(self.document.line_count)]
        prefix = partial.group(2)
        options = [k for k in keys_for(lines, row) if k.startswith(prefix)]
        self.completions = ()
        if len(options) == 1:
            self.insert(options[0][len(prefix) :] + ": ")
        elif options:
            common = _common_prefix(options)
            if len(common) > len(prefix):
                self.insert(common[len(prefix) :])
            self.completions = tuple(options)
            self.app.notify(" ".join(options), title="keys", timeout=4)
        else:
            self.app.bell()


def _common_prefix(words: Sequence[str]) -> str:
    first, last = min(words), max(words)
    n = 0
    while n < len(first) and first[n] == last[n]:
        n += 1
    return first[:n]


class EditorView(Vertical):
    """The Editor pane: a heading (file, saved or not, problems) and the editor."""

    def __init__(self, *, blink: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self._blink = blink

    def compose(self) -> ComposeResult:
        yield Static("", id="editor-heading", classes="pane-heading")
        editor = SpecEditor(id="editor")
        editor.cursor_blink = self._blink
        yield editor

    @property
    def editor(self) -> SpecEditor:
        return self.query_one(SpecEditor)

    def update_heading(self, display: Callable[[Path], str]) -> None:
        editor = self.editor
        if editor.path is None:
            self.query_one("#editor-heading", Static).update("")
            return
        text = Text(display(editor.path), style="bold")
        text.append(
            "  modified" if editor.modified else "  saved",
            style="yellow" if editor.modified else "dim",
        )
        if editor.problems:
            first = editor.problems[0].position
            text.append(
                f"  ✗ {len(editor.problems)} problem(s), first at {first.line}:{first.column}",
                style="bold red",
            )
        else:
            text.append("  ✓ loads", style="green")
        text.append("  ctrl+s saves and builds · tab completes a key", style="dim")
        self.query_one("#editor-heading", Static).update(text)

    def on_spec_editor_checked(self, event: SpecEditor.Checked) -> None:
        self.post_message(self.Changed())

    class Changed(Message):
        """The heading should be redrawn (the app knows how to show paths)."""
