"""SVG snapshots of every main view, from real builds of a fixed project, at fixed terminal
sizes with a frozen clock. Update with `pytest tests/tui --snapshot-update` after checking
the report; they live in tests/tui/__snapshots__/test_tui_snapshots/."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from tuikit import GatedBuild, make_app, wait_built, wait_for

import engine
from engine import BuildOptions
from engine.events import LayerProgress
from vinci_tui.app import Workbench
from vinci_tui.messages import EngineEvent, SourcesChanged
from vinci_tui.widgets.cache import CacheTable
from vinci_tui.widgets.changes import ChangesLog
from vinci_tui.widgets.contents import FileTable
from vinci_tui.widgets.editor import SpecEditor
from vinci_tui.widgets.modals import ConfirmScreen

Snap = Callable[..., bool]
WIDE = (120, 36)


def after_build(*keys: str, layer: int | None = None) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, Workbench)
        await wait_built(pilot, app)
        if layer is not None:
            app.selected_layer = layer
        if keys:
            await pilot.press(*keys)
        await pilot.pause()

    return run_before


def test_main_view(snap_compare: Snap, app_factory: Callable[..., Workbench]) -> None:
    assert snap_compare(app_factory(), terminal_size=WIDE, run_before=after_build(layer=1))


def test_main_view_80x24(snap_compare: Snap, app_factory: Callable[..., Workbench]) -> None:
    assert snap_compare(app_factory(), terminal_size=(80, 24), run_before=after_build())


def test_stacked_layout_when_narrow(
    snap_compare: Snap, app_factory: Callable[..., Workbench]
) -> None:
    assert snap_compare(app_factory(), terminal_size=(70, 30), run_before=after_build())


def test_contents_sorted_by_size(snap_compare: Snap, app_factory: Callable[..., Workbench]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, Workbench)
        await wait_built(pilot, app)
        # The marks and the summary come with the analysis, a moment after the build.
        await wait_for(pilot, lambda: app.analysis is not None, what="the analysis")
        await after_build("4", "s", layer=1)(pilot)

    assert snap_compare(app_factory(), terminal_size=WIDE, run_before=run_before)


def merged_view() -> Callable[[Pilot[Any]], Awaitable[None]]:
    """Contents, `v`: the whole image merged, each file's layer and host file."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, Workbench)
        await wait_built(pilot, app)
        await wait_for(pilot, lambda: app.analysis is not None, what="the analysis")
        await pilot.press("4", "v")
        await wait_for(pilot, lambda: app.query_one(FileTable).row_count == 12)
        await pilot.pause()

    return run_before


def test_merged_view(snap_compare: Snap, app_factory: Callable[..., Workbench]) -> None:
    assert snap_compare(app_factory(), terminal_size=(120, 40), run_before=merged_view())


def test_merged_view_80x24(snap_compare: Snap, app_factory: Callable[..., Workbench]) -> None:
    assert snap_compare(app_factory(), terminal_size=(80, 24), run_before=merged_view())


def test_cache_browser(snap_compare: Snap, app_factory: Callable[..., Workbench]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await after_build("5")(pilot)
        await wait_for(pilot, lambda: pilot.app.query_one("#cache-table").row_count == 5)
        await pilot.pause()

    assert snap_compare(app_factory(), terminal_size=WIDE, run_before=run_before)


def test_cache_corrupt_blob(snap_compare: Snap, app_factory: Callable[..., Workbench]) -> None:
    """Verify found layer 1's blob corrupt (bytes overwritten on disk); the offer to remove
    it declined: the row marked, first, and the heading counting it."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, Workbench)
        await wait_built(pilot, app)
        assert app.result is not None
        blob = app.store.blob_path(app.result.layers[1].record.descriptors[0].digest)
        with open(blob, "r+b") as f:
            f.seek(blob.stat().st_size // 2)
            f.write(b"\x00\xff\x00\xff")
        await pilot.press("5")
        table = app.query_one(CacheTable)
        await wait_for(pilot, lambda: table.row_count == 5)
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: bool(table.corrupt) and table.row_count == 5)
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(app_factory(), terminal_size=(120, 40), run_before=run_before)


def test_log_filtered(snap_compare: Snap, app_factory: Callable[..., Workbench]) -> None:
    run_before = after_build("6", "slash", *"layers[1]", "enter")
    assert snap_compare(app_factory(), terminal_size=WIDE, run_before=run_before)


def test_help(snap_compare: Snap, app_factory: Callable[..., Workbench]) -> None:
    assert snap_compare(
        app_factory(), terminal_size=WIDE, run_before=after_build("2", "question_mark")
    )


def test_broken_spec_keeps_last_build(
    snap_compare: Snap, project: Path, app_factory: Callable[..., Workbench]
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, Workbench)
        await wait_built(pilot, app)
        spec = project / "vinci.yaml"
        spec.write_text(spec.read_text().replace("mode: 0755", "mode: 0999"))
        app.post_message(SourcesChanged((spec,)))
        await wait_for(pilot, lambda: bool(app.problems) and not app.building)
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(app_factory(), terminal_size=WIDE, run_before=run_before)


def test_mid_build(snap_compare: Snap, project: Path, gated_builder: GatedBuild) -> None:
    """Layer 0 done, layer 1 building at 45% (an event as the engine sends it), 2 queued."""
    builder = gated_builder

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, Workbench)
        await wait_for(pilot, builder.reached.is_set)
        await pilot.pause()
        event = LayerProgress(1, "building", 45 * 2**20, 100 * 2**20)
        app.post_message(EngineEvent(app.runner.generation, event))
        await wait_for(pilot, lambda: app.model.rows[1].state == "building")
        await pilot.pause()

    assert snap_compare(make_app(project, build=builder), terminal_size=WIDE, run_before=run_before)


def failed_build(project: Path, gate: GatedBuild) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """The second build fails at layer 1 (its directory goes while layer 0 builds), with
    layer 1 selected: the failure marked in every pane over the last good build."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, Workbench)
        await wait_built(pilot, app)
        app.selected_layer = 1
        gate.opened.clear()
        gate.reached.clear()
        app.start_build("snapshot")
        await wait_for(pilot, gate.reached.is_set)
        shutil.rmtree(project / "site")
        gate.opened.set()
        await wait_for(pilot, lambda: app.model.status == "failed" and not app.building)
        app.clear_notifications()
        await pilot.pause()

    return run_before


def test_failed_build(snap_compare: Snap, project: Path) -> None:
    gate = GatedBuild(gate_layer=0)
    gate.opened.set()
    app = make_app(project, build=gate)
    assert snap_compare(app, terminal_size=(120, 40), run_before=failed_build(project, gate))


def test_failed_build_80x24(snap_compare: Snap, project: Path) -> None:
    gate = GatedBuild(gate_layer=0)
    gate.opened.set()
    app = make_app(project, build=gate)
    assert snap_compare(app, terminal_size=(80, 24), run_before=failed_build(project, gate))


def editor_with_a_problem() -> Callable[[Pilot[Any]], Awaitable[None]]:
    """The Edit pane, a mode made invalid as you type: the problem at the end of its line."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, Workbench)
        await wait_built(pilot, app)
        await pilot.press("7")
        editor = app.query_one("#editor", SpecEditor)
        await wait_for(pilot, lambda: editor.has_focus)
        row = editor.text.splitlines().index("      mode: 0755")
        editor.move_cursor((row, len("      mode: 0755")))
        await pilot.press("backspace", "backspace", "backspace", *"999")
        await wait_for(pilot, lambda: bool(editor.problems))
        await pilot.pause()

    return run_before


def test_editor(snap_compare: Snap, app_factory: Callable[..., Workbench]) -> None:
    app = app_factory()
    assert snap_compare(app, terminal_size=(120, 40), run_before=editor_with_a_problem())


def test_editor_80x24(snap_compare: Snap, app_factory: Callable[..., Workbench]) -> None:
    app = app_factory()
    assert snap_compare(app, terminal_size=(80, 24), run_before=editor_with_a_problem())


def earlier_session(project: Path) -> None:
    """The layout a previous session left, then a source and an inline `contents` edited
    since (the second shows a text diff)."""
    spec = engine.load_spec(project / "vinci.yaml")
    engine.build(spec, BuildOptions(jobs=1, cache_dir=Path("cache"), output="oci:vinci.oci"))
    (project / "run.sh").write_text("#!/bin/sh\necho edited between sessions\n")
    path = project / "vinci.yaml"
    path.write_text(path.read_text().replace("to the workbench", "to the new workbench"))


def changes_after_restart() -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, Workbench)
        await wait_built(pilot, app)
        await wait_for(pilot, lambda: bool(app.query_one("#changes", ChangesLog).text))
        await pilot.press("8")
        await pilot.pause()

    return run_before


def test_changes(snap_compare: Snap, project: Path, app_factory: Callable[..., Workbench]) -> None:
    earlier_session(project)
    app = app_factory()
    assert snap_compare(app, terminal_size=(120, 40), run_before=changes_after_restart())


def test_changes_80x24(
    snap_compare: Snap, project: Path, app_factory: Callable[..., Workbench]
) -> None:
    earlier_session(project)
    app = app_factory()
    assert snap_compare(app, terminal_size=(80, 24), run_before=changes_after_restart())
