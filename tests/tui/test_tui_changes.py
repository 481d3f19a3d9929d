"""The Changes pane: why the digest changed, also across a restart of the workbench (the
first build of a session is compared with the image the last one left in the layout)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tuikit import wait_built, wait_for

from vinci_tui.app import Workbench
from vinci_tui.widgets.changes import ChangesLog

pytestmark = pytest.mark.anyio


async def test_changes_after_a_restart_name_the_file_and_its_cause(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    first = app_factory()
    async with first.run_test(size=(120, 40)) as pilot:
        await wait_built(pilot, first)
        assert first.result is not None
        old = first.result.manifest.digest
    # Between the two sessions, a source is edited.
    (project / "run.sh").write_text("#!/bin/sh\necho edited between sessions\n")
    second = app_factory()
    async with second.run_test(size=(120, 40)) as pilot:
        await wait_built(pilot, second)
        changes = second.query_one(ChangesLog)
        await wait_for(pilot, lambda: bool(changes.text), what="the comparison")
        await pilot.press("8")
        await pilot.pause()
        heading = str(second.query_one("#changes-heading").render())
        assert "vinci.oci (the last build before this session)" in heading and "changed" in heading
        assert old.short in changes.text
        assert any("app/run.sh" in line and "content" in line for line in changes.text.splitlines())
        # The layout was written after the comparison: it holds the new image.
        assert second.result is not None
        assert str(second.result.manifest.digest) in (Path("vinci.oci") / "index.json").read_text()


async def test_changes_within_a_session_say_identical(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_built(pilot, app)
        await pilot.press("r")
        await wait_built(pilot, app, generation=2)
        changes = app.query_one(ChangesLog)
        await wait_for(pilot, lambda: bool(changes.text))
        heading = str(app.query_one("#changes-heading").render())
        assert "the previous build in this session" in heading and "identical" in heading
