"""The Changes pane: why the digest changed, also across a restart of the workbench (the
first build of a session is compared with the image the last one left in the layout)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tuikit import wait_built, wait_for

import engine
from engine import BuildOptions
from vinci_tui.app import Workbench
from vinci_tui.widgets.changes import ChangesLog
from vinci_tui.widgets.editor import SpecEditor

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


async def test_each_change_links_to_its_spec_line_and_inline_contents_show_a_diff(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_built(pilot, app)
        spec = project / "vinci.yaml"
        text = spec.read_text()
        text = text.replace("welcome to the workbench", "welcome to the new workbench")
        spec.write_text(text.replace("GREETING: hello", "GREETING: hi"))
        lines = text.splitlines()
        motd_line = next(i for i, line in enumerate(lines, 1) if "/etc/motd" in line)
        env_line = next(i for i, line in enumerate(lines, 1) if "GREETING" in line)
        await pilot.press("r")
        await wait_built(pilot, app, generation=2)
        changes = app.query_one(ChangesLog)
        await wait_for(pilot, lambda: "/etc/motd" in changes.text, what="the comparison")
        await pilot.press("8")
        await wait_for(pilot, lambda: changes.has_focus)
        rows = changes.change_rows
        texts = [r.text.strip() for r in rows]
        # The config key is named as one, at its line; the inline file's change has a diff.
        assert "config keys" in texts
        env = next(i for i, r in enumerate(rows) if "config.Env.GREETING" in r.text)
        assert rows[env].kind == "field" and rows[env].pos is not None
        assert rows[env].pos.line == env_line
        motd = next(i for i, r in enumerate(rows) if r.kind == "file" and "/etc/motd" in r.text)
        diff = [r.text.strip() for r in rows[motd + 1 :] if r.kind == "diff"]
        assert "-welcome to the workbench" in diff and "+welcome to the new workbench" in diff
        # Enter on the file's change shows the item of the combined layer that wrote it.
        changes.move_cursor(row=motd)
        await pilot.press("enter")
        editor = app.query_one(SpecEditor)
        await wait_for(pilot, lambda: editor.has_focus, what="the Edit pane")
        assert editor.cursor_location[0] + 1 == motd_line
        # And Enter on the config key's change, the key's own line (the editor takes digits:
        # back to the pane as the palette would).
        app.action_focus_pane("changes")
        await wait_for(pilot, lambda: changes.has_focus)
        changes.move_cursor(row=env)
        await pilot.press("enter")
        await wait_for(pilot, lambda: editor.has_focus)
        assert editor.cursor_location[0] + 1 == env_line


async def test_a_codec_only_change_is_named_and_linked_to_its_layer(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    # A previous session built with zstd; this one builds with gzip: same tar bytes.
    spec = engine.load_spec(project / "vinci.yaml")
    engine.build(
        spec, BuildOptions(codec="zstd", jobs=1, cache_dir=Path("cache"), output="oci:vinci.oci")
    )
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_built(pilot, app)
        changes = app.query_one(ChangesLog)
        await wait_for(pilot, lambda: bool(changes.text), what="the comparison")
        rows = changes.change_rows
        named = [r for r in rows if "codec-only change" in r.text]
        assert len(named) == 3  # one per layer, each at its layer node's line
        lines = {r.pos.line for r in named if r.pos is not None}
        assert lines == {node.pos.line for node in spec.layers}
