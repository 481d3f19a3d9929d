"""Watch mode: which paths count, and (in one marked test) real filesystem notifications
through watchfiles triggering a rebuild whose new digest appears."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tuikit import wait_built

from engine import load_spec
from vinci_tui.app import Workbench
from vinci_tui.watch import watch_targets
from vinci_tui.widgets.layers import LayersTable
from vinci_tui.widgets.log import BuildLog
from vinci_tui.widgets.spec_tree import SpecTree

pytestmark = pytest.mark.anyio


def test_watch_targets_keep_only_what_the_spec_reads(project: Path) -> None:
    spec = load_spec(project / "vinci.yaml")
    targets = watch_targets(Path("vinci.yaml"), spec)
    assert targets.roots == (project,)  # one recursive watch covers the spec and its sources
    assert targets.recursive
    assert targets.relevant(project / "vinci.yaml")
    assert targets.relevant(project / "run.sh")
    assert targets.relevant(project / "site" / "assets" / "new.css")
    assert not targets.relevant(project / "notes.txt")
    assert not targets.relevant(project / "vinci.oci" / "index.json")
    # A cache inside a watched tree: the builds write there, it never triggers one; nor does
    # a cache whose base is the project itself (only its versioned root is passed over).
    for base in (project / "site" / ".cache", project):
        cached = watch_targets(Path("vinci.yaml"), spec, base / "v1")
        assert not cached.relevant(base / "v1" / "layers" / "x.json")
        assert cached.relevant(project / "site" / "assets" / "new.css")
    # Before the spec has ever loaded, the spec file alone is watched, one level deep.
    bare = watch_targets(Path("vinci.yaml"), None)
    assert bare.roots == (project,) and not bare.recursive
    assert bare.relevant(project / "vinci.yaml") and not bare.relevant(project / "run.sh")


async def test_watch_toggle_key(app_factory: Callable[..., Workbench]) -> None:
    app = app_factory(watch=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        assert app.watching and "watch on" in str(app.query_one("#status").render())
        await pilot.press("w")
        await pilot.pause()
        assert not app.watching and "watch off" in str(app.query_one("#status").render())
        assert not [w for w in app.workers if w.group == "watch" and not w.is_finished]


@pytest.mark.watch
async def test_saving_a_source_rebuilds_with_the_new_digest(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    app = app_factory(watch=True, debounce_ms=300)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        assert app.result is not None
        before = app.result.layers[0].record.descriptors[0].digest
        tree = app.query_one(SpecTree)
        node = tree.node_for_key("config")
        assert node is not None
        node.collapse()
        await pilot.press("1")
        tree.move_cursor(tree.node_for_key("layers[1].directory"))
        await pilot.pause()
        # The watcher may still be starting: save until a rebuild begins (each save is real).
        for attempt in range(20):
            (project / "run.sh").write_text(f"#!/bin/sh\necho saved {attempt}\n")
            deadline = time.monotonic() + 1.0
            while app.runner.generation < 2 and time.monotonic() < deadline:
                await pilot.pause(0.05)
            if app.runner.generation >= 2:
                break
        await wait_built(pilot, app, generation=app.runner.generation)
        after = app.result.layers[0].record.descriptors[0].digest
        assert after != before
        assert str(app.query_one(LayersTable).get_cell("0", "digest")) == after.short
        lines = [t for _, t in app.query_one(BuildLog).lines_kept]
        assert "watch: run.sh changed" in lines
        # The tree was rebuilt from the new parse; expansion and cursor survived.
        config = tree.node_for_key("config")
        assert config is not None and not config.is_expanded
        assert tree.cursor_node is not None and tree.cursor_node.data is not None
        assert tree.cursor_node.data.key == "layers[1].directory"
