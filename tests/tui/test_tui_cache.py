"""The Cache pane acts: verify marks a corrupt blob (bytes overwritten on disk) and removes it
after asking; gc asks for keep-days and a size budget, previews what it frees, and frees
exactly that."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Input
from tuikit import wait_built, wait_for

from engine.humanize import human_bytes
from vinci_tui.app import Workbench
from vinci_tui.widgets.cache import CacheTable
from vinci_tui.widgets.log import BuildLog
from vinci_tui.widgets.modals import ConfirmScreen, GcOptionsScreen

pytestmark = pytest.mark.anyio


def corrupt_a_layer_blob(app: Workbench) -> Path:
    """Overwrite bytes in the middle of layer 1's blob, as a bad disk or a stray write
    would: same size, other content."""
    assert app.result is not None
    digest = app.result.layers[1].record.descriptors[0].digest
    blob = app.store.blob_path(digest)
    with open(blob, "r+b") as f:
        f.seek(blob.stat().st_size // 2)
        f.write(b"\x00\xff\x00\xff")
    return blob


def logged(app: Workbench, text: str) -> bool:
    return any(text in line for _, line in app.query_one(BuildLog).lines_kept)


async def test_verify_marks_a_corrupt_blob_and_removes_it(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_built(pilot, app)
        blob = corrupt_a_layer_blob(app)
        digest = f"sha256:{blob.name}"
        await pilot.press("5")
        table = app.query_one(CacheTable)
        await wait_for(pilot, lambda: table.row_count == 5, what="the cache listing")
        await pilot.press("v")
        # Verify offers at once to remove what it found.
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the offer")
        question = str(app.screen.query_one("#confirm-question").render())
        assert "Remove 1 corrupt blob(s)?" in question
        assert blob.name[:12] in str(app.screen.query_one("#confirm-detail").render())
        await pilot.press("n")
        await pilot.pause()
        # Declined: the row stays marked, first, in red, and the heading counts it.
        assert blob.exists() and table.corrupt.keys() == {digest}
        first = table.get_row_at(0)
        assert str(first[0]) == f"✗ {blob.name[:10]}" and "red" in str(first[0].style)
        assert "1 corrupt (d removes)" in str(app.query_one("#cache-heading").render())
        # d asks again; yes removes it through the engine, with the record naming it.
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: logged(app, "removed 1 corrupt blob(s)"), what="removal")
        assert logged(app, "and 1 layer record(s) naming them")
        assert not blob.exists()
        await wait_for(pilot, lambda: table.row_count == 4, what="the listing without it")
        assert not table.corrupt
        # The next build writes the layer again, and the cache verifies clean.
        await pilot.press("r")
        await wait_built(pilot, app, generation=2)
        assert blob.exists()
        await pilot.press("5", "v")
        await wait_for(pilot, lambda: logged(app, "verified 5 blobs: ok"))


async def test_gc_previews_what_it_frees_then_frees_that(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_built(pilot, app)
        # A second build with another run.sh leaves the first one's layer 0, config and
        # manifest unused by the newest build.
        (project / "run.sh").write_text("#!/bin/sh\necho second\n")
        await pilot.press("r")
        await wait_built(pilot, app, generation=2)
        await pilot.press("5")
        table = app.query_one(CacheTable)
        await wait_for(pilot, lambda: table.row_count == 8, what="the cache listing")
        on_disk = {p.name: p.stat().st_size for p in app.store.blob_dir.iterdir()}
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, GcOptionsScreen))
        # The options parse as `vinci cache gc` parses them: a bad one is said in the dialog.
        await pilot.press("tab", *"5X", "enter")
        await pilot.pause()
        problem = str(app.screen.query_one("#gc-problem").render())
        assert "'5X' is not a size like 500M or 2G" in problem
        size_input = app.screen.query_one("#gc-max-size", Input)
        size_input.focus()
        await pilot.press("backspace", "backspace", "shift+tab", "backspace", "backspace", "0")
        assert app.screen.query_one("#gc-keep-days", Input).value == "0"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the preview")
        question = str(app.screen.query_one("#confirm-question").render())
        detail = str(app.screen.query_one("#confirm-detail").render())
        await pilot.press("y")
        await wait_for(pilot, lambda: logged(app, "cache: removed"), what="the collection")
        gone = {
            name: size for name, size in on_disk.items() if not (app.store.blob_dir / name).exists()
        }
        # Exactly the blobs the preview listed, and the bytes it said.
        assert len(gone) == 3
        assert question == f"Remove 3 blob(s), {human_bytes(sum(gone.values()))}?"
        assert all(name[:12] in detail for name in gone)
        assert logged(app, f"removed 3 blobs ({human_bytes(sum(gone.values()))})")
        assert logged(app, "gc would remove 3 blob(s)")
        await wait_for(pilot, lambda: table.row_count == 5, what="the listing after gc")
