"""Authoring in the workbench: the Edit pane validates as you type (problems at their line
and column, nothing built), ctrl+s saves and builds, tab completes keys; `e` hands the spec to
$EDITOR at the focused node; another spec can be opened."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Static
from tuikit import wait_built, wait_for

from vinci_tui.app import Workbench
from vinci_tui.messages import SourcesChanged
from vinci_tui.widgets.editor import SpecEditor
from vinci_tui.widgets.modals import AskScreen, ConfirmScreen
from vinci_tui.widgets.spec_tree import SpecTree

pytestmark = pytest.mark.anyio


def line_text(editor: SpecEditor, row: int) -> str:
    """What the editor draws on document line `row` (0-based), inline problem included."""
    return editor.render_line(row - int(editor.scroll_y)).text


async def open_editor(pilot: object, app: Workbench) -> SpecEditor:
    editor = app.query_one(SpecEditor)
    await pilot.press("7")  # type: ignore[attr-defined]
    await wait_for(pilot, lambda: editor.has_focus)  # type: ignore[arg-type]
    return editor


async def test_a_bad_mode_shows_inline_as_you_type_without_a_build(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_built(pilot, app)
        editor = await open_editor(pilot, app)
        assert not editor.problems
        row = editor.text.splitlines().index("      mode: 0755")
        editor.move_cursor((row, len("      mode: 0755")))
        await pilot.press("backspace", "backspace", "backspace", "9", "9", "9")
        await wait_for(pilot, lambda: bool(editor.problems), what="the inline problem")
        (problem,) = editor.problems
        assert (problem.position.line, problem.position.column) == (row + 1, 13)
        assert "0999 is not a valid mode" in problem.message
        await pilot.pause()
        assert "✗ 13: " in line_text(editor, row)
        heading = str(app.query_one("#editor-heading").render())
        assert "modified" in heading and f"first at {row + 1}:13" in heading
        # Validation built nothing; the file on disk is untouched.
        assert app.runner.generation == 1
        assert "mode: 0755" in Path("vinci.yaml").read_text()


async def test_ctrl_s_saves_and_builds_at_once(app_factory: Callable[..., Workbench]) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_built(pilot, app)
        editor = await open_editor(pilot, app)
        row = editor.text.splitlines().index("    GREETING: hello")
        editor.move_cursor((row, len("    GREETING: hello")))
        await pilot.press(*" world", "ctrl+s")
        await wait_built(pilot, app, generation=2)
        assert "GREETING: hello world" in Path("vinci.yaml").read_text()
        assert app.spec is not None and app.spec.config.env == (("GREETING", "hello world"),)
        assert "saved" in str(app.query_one("#editor-heading").render())


async def test_tab_completes_a_key_from_the_spec_schema(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_built(pilot, app)
        editor = await open_editor(pilot, app)
        # A top-level key…
        editor.move_cursor((0, 0))
        # (`plat` no longer: `platform` and `platforms` both start so.)
        await pilot.press("enter", "up", *"annot", "tab")
        assert editor.text.splitlines()[:2] == ["annotations: ", "spec-version: v1"]
        # …and a key of a file layer, after its kind.
        row = editor.text.splitlines().index("      mode: 0755")
        editor.move_cursor((row, len("      mode: 0755")))
        await pilot.press("enter", *"      ui", "tab")
        assert editor.text.splitlines()[row + 1].strip() == "uid:"


async def test_e_opens_editor_at_the_focused_node_and_rebuilds(
    project: Path, app_factory: Callable[..., Workbench], monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = project / "bin"
    bin_dir.mkdir()
    script = bin_dir / "nano"  # named as an editor whose line:column convention is known
    record = project / "editor-args.txt"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("VISUAL", str(script))
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_built(pilot, app)
        tree = app.query_one(SpecTree)
        await pilot.press("1")
        node = tree.node_for_key("layers[1].directory")
        assert node is not None and node.data is not None and node.data.pos is not None
        tree.move_cursor(node)
        await pilot.pause()
        await pilot.press("e")
        await wait_for(pilot, record.exists, what="the editor to run")
        pos = node.data.pos
        assert record.read_text().splitlines() == [
            f"+{pos.line},{pos.column}",
            os.path.abspath("vinci.yaml"),
        ]
        await wait_built(pilot, app, generation=2)


async def test_open_spec_switches_to_another_spec(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    other = project / "other"
    other.mkdir()
    (other / "vinci.yaml").write_text(
        'spec-version: v1\nlayers:\n  - file: {path: /etc/other, contents: "x\\n"}\n'
    )
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_built(pilot, app)
        app.action_open_spec()
        await wait_for(pilot, lambda: isinstance(app.screen, AskScreen))
        await pilot.press(*"other", "enter")
        await wait_built(pilot, app, generation=2)
        assert app.spec is not None and len(app.spec.layers) == 1
        assert app.query_one(SpecEditor).text.startswith("spec-version: v1\nlayers:\n  - file")


async def test_quitting_with_unsaved_edits_asks_first(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_built(pilot, app)
        editor = await open_editor(pilot, app)
        await pilot.press(*"# note", "ctrl+c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="a question")
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and editor.modified


async def test_a_deleted_spec_is_said_plainly_and_can_be_written_back(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    app = app_factory()
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_built(pilot, app)
        spec = project / "vinci.yaml"
        text = spec.read_text()
        spec.rename(project / "renamed.yaml")
        app.post_message(SourcesChanged((spec,)))
        await wait_for(pilot, lambda: bool(app.problems), what="the spec to be missed")
        await pilot.pause()
        status = str(app.query_one("#status", Static).render())
        assert "vinci.yaml was deleted or renamed" in status
        editor = await open_editor(pilot, app)
        assert editor.text == text and editor.modified
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not app.problems and app.model.status == "built")
        assert spec.read_text() == text


async def test_enter_on_a_spec_problem_shows_it_in_the_edit_pane(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_built(pilot, app)
        spec = project / "vinci.yaml"
        spec.write_text(spec.read_text().replace("mode: 0755", "mode: 0999"))
        app.post_message(SourcesChanged((spec,)))
        await wait_for(pilot, lambda: bool(app.problems) and not app.building)
        tree = app.query_one(SpecTree)
        await pilot.press("1")
        await wait_for(pilot, lambda: tree.node_for_key("problem[0]") is not None)
        node = tree.node_for_key("problem[0]")
        assert node is not None
        tree.move_cursor(node)
        await pilot.pause()
        await pilot.press("enter")
        editor = app.query_one(SpecEditor)
        await wait_for(pilot, lambda: editor.has_focus, what="the Edit pane")
        assert editor.cursor_location == (10, 12)  # vinci.yaml:11:13, 0-based
