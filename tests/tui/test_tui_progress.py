"""Progress that tells time: each row shows bytes, rate and time left; the status line and
the Layers title show the build's time left. Driven by the engine's own progress events on a
clock the test moves, so the figures are exact."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.faultproxy import FaultProxy
from textual.widgets import Static
from tuikit import GatedBuild, make_app, wait_built, wait_for

from engine.events import LayerProgress
from vinci_tui.app import Workbench
from vinci_tui.clock import FrozenClock
from vinci_tui.messages import EngineEvent
from vinci_tui.widgets.details import DetailsTable
from vinci_tui.widgets.layers import LayersTable
from vinci_tui.widgets.log import BuildLog

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


def point_spec_at(project: Path, image: str) -> None:
    spec = project / "vinci.yaml"
    spec.write_text(spec.read_text().replace("registry.example/vinci/workbench:v1", image))


async def test_push_says_each_retry_and_leaves_a_lasting_line(
    project: Path, fault_proxy: FaultProxy, app_factory: Callable[..., Workbench]
) -> None:
    point_spec_at(project, f"{fault_proxy.host}/tui/retried:v1")
    # The first blob upload is refused with 503 (Retry-After: 1): the upload is retried.
    fault_proxy.inject("unavailable", method="POST", path_kind="upload")
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        log = app.query_one(BuildLog)
        await pilot.press("p")
        await wait_for(pilot, lambda: bool(app.pushed), what="the push to finish", timeout=30)
        retries = [t for level, t in log.lines_kept if "attempt 1 failed" in t]
        assert len(retries) == 1 and "attempt 2 of 5 in" in retries[0], retries
        assert app.pushed.startswith(f"pushed to {fault_proxy.host}/tui/retried (v1) at ")
        assert "sent in" in app.pushed
        await pilot.pause()
        status = str(app.query_one("#status", Static).render())
        assert f"pushed {fault_proxy.host}/tui/retried:v1 at " in status
        details = app.query_one(DetailsTable)
        fields = [str(details.get_row_at(i)[0]) for i in range(details.row_count)]
        assert "pushed" in fields


async def test_push_can_be_cancelled_while_it_retries(
    project: Path, fault_proxy: FaultProxy, app_factory: Callable[..., Workbench]
) -> None:
    point_spec_at(project, f"{fault_proxy.host}/tui/cancelled:v1")
    fault_proxy.inject("unavailable", method="POST", path_kind="upload", times=50)
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        log = app.query_one(BuildLog)
        await pilot.press("p")
        await wait_for(
            pilot, lambda: any("attempt 1 failed" in t for _, t in log.lines_kept), timeout=30
        )
        await pilot.press("c")
        await wait_for(pilot, lambda: not app.tasks.busy("push"), what="the push to stop")
        await wait_for(
            pilot, lambda: ("warning", "push cancelled: nothing was tagged") in log.lines_kept
        )
        assert not app.pushed
        # The rows went back to their build's states.
        assert [r.state for r in app.model.rows.values()] == ["done"] * 3
