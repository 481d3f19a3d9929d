"""Pilot tests of the build flow with the real engine: layers reach done, cache hits on the
second build, a changed source rebuilds with a new digest, a broken spec keeps the last good
build on screen, quitting mid-build cancels and leaves no thread behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from support.registry import RegistryServer
from textual.message import Message
from textual.widgets import Static
from tuikit import GatedBuild, make_app, vinci_threads, wait_built, wait_for

from engine import BuildOptions
from engine.events import LayerProgress
from vinci_tui.app import Workbench
from vinci_tui.messages import EngineEvent, SourcesChanged
from vinci_tui.widgets.details import DetailsTable
from vinci_tui.widgets.layers import LayersTable
from vinci_tui.widgets.modals import ConfirmScreen
from vinci_tui.widgets.spec_tree import SpecTree

pytestmark = pytest.mark.anyio


def cell(app: Workbench, index: int, column: str) -> str:
    table = app.query_one(LayersTable)
    return str(table.get_cell(str(index), column))


def status(app: Workbench) -> str:
    return str(app.query_one("#status", Static).render())


async def test_build_runs_and_every_layer_reaches_done(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        assert app.model.status == "built"
        assert [r.state for r in app.model.rows.values()] == ["done", "done", "done"]
        assert [cell(app, i, "cache") for i in range(3)] == ["miss"] * 3
        assert app.result is not None
        manifest = str(app.result.manifest.digest)
        # The title says where the build is; the manifest digest is on the first screen.
        assert app.query_one("#layers-pane").border_title == "2 Layers · built in 0.2 s, 0/3 cached"
        assert manifest.removeprefix("sha256:")[:12] in status(app)
        assert app.result.layers[0].record.descriptors[0].digest.short == cell(app, 0, "digest")
        # Details show the full manifest digest.
        details = app.query_one(DetailsTable)
        values = [str(details.get_row_at(i)[1]) for i in range(details.row_count)]
        assert manifest in values
        # The layout was written next to the spec, as `vinci build` does.
        assert (Path("vinci.oci") / "index.json").is_file()


async def test_second_build_shows_cache_hits(app_factory: Callable[..., Workbench]) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        first = str(app.result.manifest.digest) if app.result else ""
        await pilot.press("r")
        await wait_built(pilot, app, generation=2)
        assert [r.state for r in app.model.rows.values()] == ["cached"] * 3
        assert [cell(app, i, "cache") for i in range(3)] == ["hit"] * 3
        assert app.model.title() == "built in 0.2 s, 3/3 cached"
        assert app.result is not None and str(app.result.manifest.digest) == first
        # Nothing changed between the builds, and the Details pane says so.
        assert app.changes == {0: (), 1: (), 2: ()}


async def test_changed_source_rebuilds_with_new_digest(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        assert app.result is not None
        before = app.result.layers[0].record.descriptors[0].digest
        (project / "run.sh").write_text("#!/bin/sh\necho changed\n")
        app.post_message(SourcesChanged((project / "run.sh",)))
        await wait_built(pilot, app, generation=2)
        after = app.result.layers[0].record.descriptors[0].digest
        assert after != before
        assert cell(app, 0, "digest") == after.short
        assert cell(app, 0, "cache") == "miss" and cell(app, 1, "cache") == "hit"
        changes = app.changes[0]
        assert changes is not None and [c.change for c in changes] == ["content"]
        assert changes[0].path == "/app/run.sh"
        lines = app.query_one("#log").lines_kept  # type: ignore[attr-defined]
        assert ("watch", "watch: run.sh changed") in lines
        # The log explains the new digest the way `vinci diff` does: which file, which cause.
        diff = [text for level, text in lines if level == "diff"]
        assert diff[0].startswith("changed since the last build: ")
        assert any("app/run.sh" in text and "content" in text for text in diff), diff


async def test_broken_spec_shows_error_and_keeps_last_build(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        assert app.result is not None
        good = app.result.manifest.digest
        spec = project / "vinci.yaml"
        spec.write_text(spec.read_text().replace("mode: 0755", "mode: 0999"))
        app.post_message(SourcesChanged((spec,)))
        await wait_for(pilot, lambda: bool(app.problems), what="spec problems")
        await pilot.pause()
        (problem,) = app.problems
        assert str(problem.position) == "vinci.yaml:11:13"
        assert "0999 is not a valid mode" in problem.message
        tree = app.query_one(SpecTree)
        node = tree.node_for_key("problem[0]")
        assert node is not None and "vinci.yaml:11:13" in str(node.label)
        # The last good build stays: its digest in the table, the title, the details.
        assert app.result.manifest.digest == good
        assert cell(app, 0, "digest") == app.result.layers[0].record.descriptors[0].digest.short
        assert [r.state for r in app.model.rows.values()] == ["done"] * 3
        assert "problem" in status(app) and good.short in status(app)
        # Fixing the spec clears the problems and builds again.
        spec.write_text(spec.read_text().replace("mode: 0999", "mode: 0755"))
        app.post_message(SourcesChanged((spec,)))
        await wait_for(pilot, lambda: not app.problems and app.model.status == "built")
        assert tree.node_for_key("problem[0]") is None


async def test_planning_error_keeps_last_build(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        # A source that disappears is found while building: the build fails, visibly.
        (project / "run.sh").unlink()
        await pilot.press("r")
        await wait_for(pilot, lambda: app.model.status == "failed" or bool(app.problems))
        await pilot.pause()
        assert app.result is not None  # the last good result is still there


async def test_quit_during_build_cancels_and_joins(
    project: Path, gated_builder: GatedBuild
) -> None:
    app = make_app(project, build=gated_builder)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, gated_builder.reached.is_set, what="the build to reach layer 1")
        assert app.building
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # no: the build goes on
        await pilot.pause()
        assert app.building and not isinstance(app.screen, ConfirmScreen)
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.is_running, what="the app to exit")
    # The cancel token stopped the engine and every worker thread was joined.
    assert not gated_builder.opened.is_set()
    assert vinci_threads() == []
    assert app.return_value == 0


async def test_quit_when_idle_needs_no_confirmation(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)
    assert vinci_threads() == []


async def test_cancel_key_cancels_the_build(project: Path, gated_builder: GatedBuild) -> None:
    app = make_app(project, build=gated_builder)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, gated_builder.reached.is_set)
        await pilot.press("c")
        await wait_for(pilot, lambda: app.model.status == "cancelled" and not app.building)
        assert app.model.title() == "cancelled"
        assert app.model.rows[1].state == "cancelled"
        assert app.model.rows[0].state == "done"


async def test_progress_messages_coalesce_and_stay_in_order(
    project: Path, gated_builder: GatedBuild
) -> None:
    """A flood of progress for one layer is folded (can_replace) and the last value wins."""
    app = make_app(project, build=gated_builder)
    seen: list[int] = []

    def dispatched(message: Message) -> None:
        if isinstance(message, EngineEvent) and isinstance(message.event, LayerProgress):
            seen.append(message.event.done)

    async with app.run_test(size=(120, 36), message_hook=dispatched) as pilot:
        await wait_for(pilot, gated_builder.reached.is_set)
        # The engine's own LayerStarted for this layer crosses threads (call_soon_threadsafe)
        # and may be queued after messages posted here: let it land before the flood.
        await wait_for(pilot, lambda: app.model.rows[1].state != "queued")
        generation = app.runner.generation
        seen.clear()
        total = 4_000_000
        for done in range(0, total + 1, 1000):
            app.post_message(EngineEvent(generation, LayerProgress(1, "building", done, total)))
        await wait_for(pilot, lambda: bool(seen) and seen[-1] == total)
        assert len(seen) < total // 1000  # coalesced
        assert seen == sorted(seen)
        row = app.model.rows[1]
        assert (row.state, row.done, row.total) == ("compressing", total, total)
        gated_builder.opened.set()
        await wait_built(pilot, app)


async def test_push_key_pushes_the_build_to_the_spec_image(
    project: Path, registry: RegistryServer, app_factory: Callable[..., Workbench]
) -> None:
    spec = project / "vinci.yaml"
    image = registry.ref("tui/workbench", "v1")
    spec.write_text(spec.read_text().replace("registry.example/vinci/workbench:v1", image))
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        assert app.result is not None
        log = app.query_one("#log").lines_kept  # type: ignore[attr-defined]
        await pilot.press("p")
        await wait_for(pilot, lambda: any(t.startswith("pushed ") for _, t in log), what="push")
        assert ("info", f"pushed {image}") in log
        # The rows went back to their build states after showing the push.
        assert [r.state for r in app.model.rows.values()] == ["done"] * 3
        manifest = str(app.result.manifest.digest)
    reply = httpx.get(
        f"{registry.url}/v2/tui/workbench/manifests/v1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert reply.status_code == 200
    assert reply.headers["Docker-Content-Digest"] == manifest


async def test_workbench_builds_with_the_spec_lock(project: Path) -> None:
    """With a vinci.lock made by the default gzip, a workbench whose codec is the system zlib
    still shows the locked manifest digest: it builds the image `vinci build` would."""
    subprocess.run(
        [sys.executable, "-m", "engine.cli", "lock", str(project / "vinci.yaml")],
        env={**os.environ, "VINCI_CACHE_DIR": str(project / "cache")},
        check=True,
        capture_output=True,
    )
    locked = json.loads((project / "vinci.lock").read_text())["image"]["manifest"]
    zlib = BuildOptions(codec="gzip-zlib", jobs=1, cache_dir=Path("cache"))
    app = make_app(project, zlib)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        assert app.result is not None and str(app.result.manifest.digest) == locked
    unlocked = make_app(project, replace(zlib, lock="ignore"))
    async with unlocked.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, unlocked)
        assert unlocked.result is not None
        assert str(unlocked.result.manifest.digest) != locked


async def test_a_rebuilt_layer_says_how_much_it_copied(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    """An edit beside a large file: the layer is rebuilt, but the large file's members are
    copied from the last build's blob, and the Details pane says how much."""
    big = b"".join(b"row %d of the large asset\n" % i for i in range(100_000))
    (project / "site" / "assets" / "big.txt").write_bytes(big)
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        (project / "site" / "about.html").write_text("<p>about us, at more length</p>\n")
        app.post_message(SourcesChanged((project / "site" / "about.html",)))
        await wait_built(pilot, app, generation=2)
        assert app.result is not None
        layer = app.result.layers[1]
        assert not layer.cache_hit and layer.reused > 1 << 20
        app.query_one(LayersTable).move_cursor(row=1)
        details = app.query_one(DetailsTable)

        def cache_row() -> str:
            rows = [details.get_row_at(i) for i in range(details.row_count)]
            return next((str(r[1]) for r in rows if str(r[0]).strip() == "cache"), "")

        await wait_for(pilot, lambda: "copied from its last build's members" in cache_row())
        assert cache_row().startswith("miss: built in ")
