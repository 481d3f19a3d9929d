"""Progress that tells time: each row shows bytes, rate and time left; the status line and
the Layers title show the build's time left. Driven by the engine's own progress events on a
clock the test moves, so the figures are exact."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static
from tuikit import GatedBuild, make_app, wait_for

from engine.events import LayerProgress
from vinci_tui.clock import FrozenClock
from vinci_tui.messages import EngineEvent
from vinci_tui.widgets.layers import LayersTable

pytestmark = pytest.mark.anyio

MIB = 2**20


class ManualClock(FrozenClock):
    """A frozen clock whose monotonic time the test moves."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.mark.parametrize("size", [(120, 36), (160, 40)])
async def test_rows_show_bytes_rate_and_time_left(
    project: Path, gated_builder: GatedBuild, size: tuple[int, int]
) -> None:
    clock = ManualClock()
    app = make_app(project, build=gated_builder, clock=clock)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, gated_builder.reached.is_set, what="the build to reach layer 1")
        await wait_for(pilot, lambda: app.model.rows[1].state != "queued")
        generation = app.runner.generation
        app.post_message(EngineEvent(generation, LayerProgress(1, "building", 0, 100 * MIB)))
        await wait_for(pilot, lambda: app.model.rows[1].state == "building")
        clock.now += 2.0
        app.post_message(EngineEvent(generation, LayerProgress(1, "building", 20 * MIB, 100 * MIB)))
        await wait_for(pilot, lambda: app.model.rows[1].done == 20 * MIB)
        await pilot.pause()
        cell = str(app.query_one(LayersTable).get_cell("1", "progress"))
        assert "20M/100M" in cell and "10M/s" in cell and "8s" in cell, cell
        status = str(app.query_one("#status", Static).render())
        assert "building 1/3, ~8s left" in status
        gated_builder.opened.set()
        await wait_for(pilot, lambda: app.model.status == "built" and not app.building)
