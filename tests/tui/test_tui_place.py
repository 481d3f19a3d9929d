"""Pilot tests of "a loop that never loses your place": what a rebuild, a failed build and a
push after one do to the panes. Each test was written against a defect seen in use: the
Layers cursor jumping back to layer 0, "built" shown beside the previous digest, the Spec
tree re-expanding and its cursor jumping, a failed build looking like a good one, and `p`
pushing a stale image without a word."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Static
from tuikit import GatedBuild, make_app, wait_built, wait_for

import engine
from engine import BuildOptions, CancelToken
from engine.builder.result import BuildResult
from engine.events import BuildFinished, Event, EventSink
from engine.spec.model import Spec
from vinci_tui.app import Workbench
from vinci_tui.widgets.contents import FileTable
from vinci_tui.widgets.details import DetailsTable
from vinci_tui.widgets.layers import LayersTable
from vinci_tui.widgets.modals import ConfirmScreen
from vinci_tui.widgets.spec_tree import SpecTree

pytestmark = pytest.mark.anyio


def status(app: Workbench) -> str:
    return str(app.query_one("#status", Static).render())


def details_text(app: Workbench) -> str:
    table = app.query_one(DetailsTable)
    return "\n".join(
        " ".join(str(cell) for cell in table.get_row_at(i)) for i in range(table.row_count)
    )


def layers_cursor(app: Workbench) -> int:
    table = app.query_one(LayersTable)
    key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    return int(key or "-1")


class HeldAfterFinish:
    """engine.build, except that once armed the build's sink stops right after BuildFinished
    until released: the moment between the engine's "finished" and the app's result."""

    def __init__(self) -> None:
        self.armed = False
        self.held = threading.Event()
        self.released = threading.Event()

    def __call__(
        self,
        spec: Spec,
        options: BuildOptions | None = None,
        *,
        sink: EventSink = lambda _e: None,
        cancel: CancelToken | None = None,
    ) -> BuildResult:
        armed = self.armed

        def held(event: Event) -> None:
            sink(event)
            if armed and isinstance(event, BuildFinished):
                self.held.set()
                while not self.released.is_set() and not (cancel and cancel.cancelled):
                    time.sleep(0.005)

        return engine.build(spec, options, sink=held, cancel=cancel)


async def test_layers_cursor_stays_on_its_layer_across_rebuilds(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        await pilot.press("2", "down", "down")
        await wait_for(pilot, lambda: app.selected_layer == 2)
        await pilot.press("r")
        await wait_built(pilot, app, generation=2)
        assert layers_cursor(app) == 2
        assert app.selected_layer == 2
        assert "Layer 2 · layers[2].combined" in details_text(app)


async def test_selection_follows_the_spec_node_when_a_layer_is_inserted(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        await pilot.press("2", "down")
        await wait_for(pilot, lambda: app.selected_layer == 1)
        spec = project / "vinci.yaml"
        spec.write_text(
            spec.read_text().replace(
                "layers:\n", 'layers:\n  - file: {path: /etc/hostname, contents: "box\\n"}\n'
            )
        )
        await pilot.press("r")
        await wait_built(pilot, app, generation=2)
        # The directory layer moved from index 1 to 2; the selection moved with it.
        assert app.selected_layer == 2
        assert layers_cursor(app) == 2
        assert "Layer 2 · layers[2].directory" in details_text(app)


async def test_status_never_pairs_built_with_the_previous_digest(
    project: Path,
) -> None:
    held = HeldAfterFinish()
    app = make_app(project, build=held)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        assert app.result is not None
        old = app.result.manifest.digest
        (project / "run.sh").write_text("#!/bin/sh\necho changed\n")
        held.armed = True
        await pilot.press("r")
        await wait_for(pilot, held.held.is_set, what="the engine to finish")
        await wait_for(pilot, lambda: app.model.status == "built", what="BuildFinished")
        await pilot.pause()
        line = status(app)
        assert "built" in line
        assert old.short not in line
        assert app.model.manifest is not None and app.model.manifest.short in line
        held.released.set()
        await wait_built(pilot, app, generation=2)
        assert app.result.manifest.digest.short in status(app)


async def test_status_names_the_previous_digest_while_building(project: Path) -> None:
    gate = GatedBuild(gate_layer=1)
    gate.opened.set()
    app = make_app(project, build=gate)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        assert app.result is not None
        old = app.result.manifest.digest
        gate.opened.clear()
        gate.reached.clear()
        await pilot.press("r")
        await wait_for(pilot, gate.reached.is_set, what="the build to reach layer 1")
        await wait_for(pilot, lambda: app.model.status == "building")
        await pilot.pause()
        assert f"last built sha256:{old.short}" in status(app)
        gate.opened.set()
        await wait_built(pilot, app, generation=2)
        assert "last built" not in status(app)


async def test_spec_tree_keeps_expansion_and_cursor_across_rebuilds(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        tree = app.query_one(SpecTree)
        await pilot.press("1")
        await wait_for(pilot, lambda: tree.has_focus)
        layers = tree.node_for_key("layers")
        assert layers is not None
        # Put the cursor on "layers" and collapse it, then move to the config node.
        tree.move_cursor(layers)
        await pilot.press("space")
        await wait_for(pilot, lambda: layers is not None and not layers.is_expanded)
        config = tree.node_for_key("config")
        assert config is not None
        tree.move_cursor(config)
        await pilot.pause()
        await pilot.press("r")
        await wait_built(pilot, app, generation=2)
        await pilot.pause()
        layers = tree.node_for_key("layers")
        assert layers is not None and not layers.is_expanded
        cursor = tree.cursor_node
        assert cursor is not None and cursor.data is not None and cursor.data.key == "config"


async def test_failed_build_is_marked_and_push_asks_first(project: Path) -> None:
    # The spec loads (its sources exist); the directory goes while layer 0 builds, so the
    # build itself fails, at layer 1.
    gate = GatedBuild(gate_layer=0)
    gate.opened.set()
    app = make_app(project, build=gate)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        assert app.result is not None
        good = app.result.manifest.digest
        await pilot.press("2", "down")
        await wait_for(pilot, lambda: app.selected_layer == 1)
        gate.opened.clear()
        gate.reached.clear()
        await pilot.press("r")
        await wait_for(pilot, gate.reached.is_set, what="the build to reach layer 0")
        shutil.rmtree(project / "site")
        gate.opened.set()
        await wait_for(pilot, lambda: app.model.status == "failed" and not app.building)
        await pilot.pause()
        # The row, the spec node, the status and Details all say the build failed.
        assert str(app.query_one(LayersTable).get_cell("1", "state")).startswith("failed")
        node = app.query_one(SpecTree).node_for_key("layers[1].directory")
        assert node is not None and "failed" in str(node.label)
        assert "failed" in status(app) and f"last good sha256:{good.short}" in status(app)
        text = details_text(app)
        assert "This build failed" in text and "last good build" in text
        assert "layer 1 failed here" in text and "./site is not a directory" in text
        # Push would send the last good image: it asks first, and "no" sends nothing.
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="a question")
        await pilot.press("n")
        await pilot.pause()
        assert not app.tasks.busy("push")
        assert not isinstance(app.screen, ConfirmScreen)


async def test_contents_keeps_cursor_and_folds_when_its_layer_rebuilds(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        await pilot.press("2", "down")
        await wait_for(pilot, lambda: app.selected_layer == 1)
        await pilot.press("4")
        table = app.query_one(FileTable)
        await wait_for(pilot, lambda: table.has_focus and table.row_count == 7)
        # Fold assets/, then put the cursor on index.html (the last row).
        table.move_cursor(row=3)
        assert table.current_path() == "/srv/site/assets"
        await pilot.press("space", "G")
        await wait_for(pilot, lambda: table.current_path() == "/srv/site/index.html")
        assert table.row_count == 5
        (project / "site" / "index.html").write_text("<h1>changed</h1>\n")
        await pilot.press("r")
        await wait_built(pilot, app, generation=2)
        assert app.model.rows[1].state == "done"  # the layer was rebuilt, with a new digest
        assert table.current_path() == "/srv/site/index.html"
        assert table.row_count == 5  # assets/ stays folded


async def test_details_keeps_its_cursor_across_rebuilds(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_built(pilot, app)
        await pilot.press("3")
        details = app.query_one(DetailsTable)
        await wait_for(pilot, lambda: details.has_focus)
        await pilot.press("G")
        row, scroll = details.cursor_row, details.scroll_y
        assert row == details.row_count - 1 and scroll > 0, (row, details.size)
        await pilot.press("r")
        await wait_built(pilot, app, generation=2)
        assert details.cursor_row == row
        assert details.scroll_y == scroll
