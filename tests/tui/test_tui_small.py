"""The small things users of k9s, lazygit and dive expect: ctrl+c quits (asking during a
build), a screenshot lands where the user is, watch passes over what a layer excludes, the
Spec pane can be widened or maximized, errors name their paths."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable
from tuikit import GatedBuild, make_app, vinci_threads, wait_built, wait_for

from engine import load_spec
from engine.events import (
    BlobMounted,
    BlobPushed,
    BlobSkipped,
    LayerQueued,
    PushFinished,
    PushStarted,
)
from engine.oci.digest import Digest
from vinci_tui.app import Workbench
from vinci_tui.clock import FrozenClock
from vinci_tui.messages import TaskFinished
from vinci_tui.model import BuildModel, describe
from vinci_tui.watch import watch_targets
from vinci_tui.widgets.cache import CacheTable
from vinci_tui.widgets.contents import FileTable
from vinci_tui.widgets.details import DetailsTable
from vinci_tui.widgets.layers import LayersTable
from vinci_tui.widgets.log import BuildLog
from vinci_tui.widgets.modals import ConfirmScreen
from vinci_tui.widgets.spec_tree import SpecTree

pytestmark = pytest.mark.anyio


async def test_ctrl_c_quits_when_idle(app_factory: Callable[..., Workbench]) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: not app.is_running, what="the app to exit")
    assert app.return_value == 0


async def test_ctrl_c_asks_during_a_build(project: Path, gated_builder: GatedBuild) -> None:
    app = make_app(project, build=gated_builder)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, gated_builder.reached.is_set, what="the build to reach layer 1")
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="a question")
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.is_running, what="the app to exit")
    assert vinci_threads() == []


async def test_screenshot_is_saved_in_the_current_directory(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await wait_built(pilot, app)
        await pilot.press("ctrl+p")
        await pilot.press(*"Screenshot")
        await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, lambda: bool(list(project.glob("*.svg"))), what="a screenshot")
        (shot,) = project.glob("*.svg")
        await wait_for(pilot, lambda: "</svg>" in shot.read_text(), what="the whole file")


def test_watch_passes_over_files_a_layer_excludes(project: Path) -> None:
    spec = project / "vinci.yaml"
    spec.write_text(
        spec.read_text().replace(
            "      source: ./site\n", "      source: ./site\n      exclude: ['*.bak', 'drafts']\n"
        )
    )
    targets = watch_targets(Path("vinci.yaml"), load_spec(spec))
    assert targets.relevant(project / "site" / "index.html")
    assert not targets.relevant(project / "site" / "index.html.bak")
    assert not targets.relevant(project / "site" / "drafts" / "next.html")
    assert targets.relevant(project / "site" / "assets" / "app.js")


async def test_spec_pane_widens_and_maximizes(app_factory: Callable[..., Workbench]) -> None:
    app = app_factory()
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_built(pilot, app)
        pane = app.query_one("#spec-pane")
        before = pane.outer_size.width
        await pilot.press("greater_than_sign", "greater_than_sign")
        await wait_for(pilot, lambda: pane.outer_size.width == before + 8)
        await pilot.press("less_than_sign")
        await wait_for(pilot, lambda: pane.outer_size.width == before + 4)
        tree = app.query_one(SpecTree)
        await pilot.press("1")
        await wait_for(pilot, lambda: tree.has_focus)
        await pilot.press("z")
        await wait_for(pilot, lambda: app.screen.maximized is tree)
        await wait_for(pilot, lambda: tree.outer_size.width == 160)
        await pilot.press("z")
        await wait_for(pilot, lambda: app.screen.maximized is None)


async def test_a_full_disk_is_one_line_naming_the_path(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        full = OSError(28, "No space left on device", "/srv/cache/blobs/tmp")
        app.post_message(TaskFinished("cache-list", app.tasks.current("cache-list"), full))
        log = app.query_one(BuildLog)
        await wait_for(pilot, lambda: any("No space" in t for _, t in log.lines_kept))
        (line,) = [t for _, t in log.lines_kept if "No space" in t]
        assert "OSError" not in line and "/srv/cache/blobs/tmp" in line
        assert "free some space" in line


async def test_log_lines_carry_their_time(app_factory: Callable[..., Workbench]) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        await pilot.press("6")
        log = app.query_one(BuildLog)
        await wait_for(pilot, lambda: bool(log.lines))
        # The frozen clock's wall time, 1,700,000,000 s, in UTC (the tests' zone).
        first = log.lines[0].text
        assert first.startswith("22:13:20 workbench started on vinci.yaml"), first


def test_push_events_read_as_sentences() -> None:
    model = BuildModel(FrozenClock())
    model.apply(LayerQueued(0, "layers[0].file"))
    digest = Digest.parse("sha256:" + "ab" * 32)
    lines = [
        describe(model, event, False)
        for event in (
            PushStarted("registry.example/vinci/app", 3, 3 * 2**20),
            BlobPushed(digest, 2**20, 0),
            BlobSkipped(digest, 100, -1),
            BlobMounted(digest, 10, 0, "vinci/base"),
            PushFinished("registry.example/vinci/app", digest, ("v1",), 2**20, 1.5),
        )
    ]
    assert lines == [
        ("info", "push to registry.example/vinci/app: 3 blobs, 3.0 MiB"),
        ("event", "layers[0].file: sent abababababab (1.0 MiB)"),
        ("event", "config: already in the registry (abababababab, 100 B)"),
        ("event", "layers[0].file: mounted abababababab from vinci/base"),
        (
            "info",
            "pushed to registry.example/vinci/app (v1) at 22:13:20 (1.0 MiB sent in 0.2 s), "
            "manifest abababababab",
        ),
    ]


async def test_slash_filters_the_spec_layers_and_details_panes(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        # Layers: only the rows that match; escape brings every row back.
        layers = app.query_one(LayersTable)
        await pilot.press("2", "slash", *"site")
        await wait_for(pilot, lambda: layers.row_count == 1)
        assert str(layers.get_row_at(0)[0]) == "1"  # the directory layer
        await pilot.press("escape")
        await wait_for(pilot, lambda: layers.row_count == 3)
        # Spec: the matching nodes and the nodes above them, expansion restored afterwards.
        tree = app.query_one(SpecTree)
        config = tree.node_for_key("config")
        assert config is not None
        config.collapse()
        await pilot.press("1")
        await wait_for(pilot, lambda: tree.has_focus)
        await pilot.press("slash", *"motd")
        await wait_for(pilot, lambda: tree.node_for_key("config") is None)
        motd = tree.node_for_key("layers[2].combined[1].file")
        assert motd is not None and "motd" in str(motd.label)
        assert tree.node_for_key("layers[0].file") is None
        await pilot.press("escape")
        await wait_for(pilot, lambda: tree.node_for_key("layers[0].file") is not None)
        config = tree.node_for_key("config")
        assert config is not None and not config.is_expanded
        # Details: only the rows whose field or value matches.
        details = app.query_one(DetailsTable)
        await pilot.press("3", "slash", *"diff_id")
        await wait_for(pilot, lambda: details.row_count == 1)
        assert str(details.get_row_at(0)[0]) == "diff_id"
        await pilot.press("escape")
        await wait_for(pilot, lambda: details.row_count > 10)


async def test_g_and_shift_g_go_to_the_top_and_bottom_of_every_pane(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        tree = app.query_one(SpecTree)
        await pilot.press("1", "G")
        await wait_for(pilot, lambda: tree.cursor_line == tree.last_line)
        await pilot.press("g")
        await wait_for(pilot, lambda: tree.cursor_line == 0)
        tables: tuple[tuple[str, DataTable[Any]], ...] = (
            ("2", app.query_one(LayersTable)),
            ("3", app.query_one(DetailsTable)),
            ("4", app.query_one(FileTable)),
            ("5", app.query_one(CacheTable)),
        )
        for key, table in tables:
            await pilot.press(key)
            await wait_for(pilot, ready(table))
            await pilot.press("G")
            await wait_for(pilot, at(table, -1))
            await pilot.press("g")
            await wait_for(pilot, at(table, 0))


def ready(table: DataTable[Any]) -> Callable[[], bool]:
    return lambda: table.has_focus and table.row_count > 1


def at(table: DataTable[Any], row: int) -> Callable[[], bool]:
    """The cursor is on `row` (-1: the last)."""
    return lambda: table.cursor_row == (row if row >= 0 else table.row_count - 1)


async def test_enter_on_a_layer_blob_in_the_cache_shows_its_files(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        assert app.result is not None
        digest = str(app.result.layers[1].record.descriptors[0].digest)
        await pilot.press("5")
        cache = app.query_one(CacheTable)
        await wait_for(pilot, lambda: cache.has_focus and digest in cache.rows)
        cache.move_cursor(row=cache.get_row_index(digest))
        await pilot.press("enter")
        table = app.query_one(FileTable)
        await wait_for(pilot, lambda: table.has_focus and table.row_count == 7, what="files")
        assert table.current_path() == "/srv"
        heading = str(app.query_one("#contents-heading").render())
        assert f"cache blob sha256:{digest.removeprefix('sha256:')[:12]}" in heading
