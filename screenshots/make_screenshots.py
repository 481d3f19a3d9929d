"""Regenerate the workbench screenshots in this directory from real builds of the examples.

    .venv/bin/python screenshots/make_screenshots.py

Each view is the real workbench running headless on examples/webapp or examples/hello, built
with the real engine into a fresh temporary cache. The clock is frozen and builds use one job,
so an unchanged workbench gives byte-identical SVGs (git shows only real changes). Nothing is
written into the examples: the OCI layout output is off, and the broken-spec view edits a copy.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from engine import BuildOptions, build, load_spec
from vinci_tui.app import Workbench
from vinci_tui.clock import FrozenClock
from vinci_tui.messages import SourcesChanged
from vinci_tui.widgets.changes import ChangesLog
from vinci_tui.widgets.contents import FileTable
from vinci_tui.widgets.editor import SpecEditor

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

Step = Callable[[Pilot[Any]], Awaitable[None]]
WIDE = (120, 36)


async def until(pilot: Pilot[Any], condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the workbench")
        await pilot.pause(0.05)


def built(app: Workbench) -> Callable[[], bool]:
    return lambda: app.result is not None and not app.building


async def shoot(
    name: str,
    spec: Path,
    size: tuple[int, int],
    cache: Path,
    steps: Step | None = None,
    write_layout: bool = False,
) -> None:
    app = Workbench(
        spec,
        BuildOptions(jobs=1, cache_dir=cache),
        watch=False,
        clock=FrozenClock(),
        cursor_blink=False,
        keymap_path=cache / "no-keys.toml",
        write_layout=write_layout,
    )
    app.animation_level = "none"
    async with app.run_test(size=size) as pilot:
        await until(pilot, built(app))
        if steps is not None:
            await steps(pilot)
        await pilot.pause()
        svg = app.export_screenshot(title=f"vinci tui {spec}")
    (HERE / f"{name}.svg").write_text(svg)
    print(f"screenshots/{name}.svg")


def keys(*presses: str, layer: int | None = None) -> Step:
    async def run(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, Workbench)
        if layer is not None:
            app.selected_layer = layer
        if presses:
            await pilot.press(*presses)
        await pilot.pause()

    return run


def contents(*presses: str, layer: int | None = None) -> Step:
    """Keys in Contents once the layer analysis (marks, merged view) is in."""

    async def run(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, Workbench)
        await until(pilot, lambda: app.analysis is not None)
        await keys(*presses, layer=layer)(pilot)
        await until(pilot, lambda: app.query_one(FileTable).row_count > 0)

    return run


async def cache_view(pilot: Pilot[Any]) -> None:
    await pilot.press("5")
    await until(pilot, lambda: pilot.app.query_one("#cache-table").row_count > 0)


def broken(spec: Path) -> Step:
    async def run(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, Workbench)
        spec.write_text(spec.read_text().replace("mode: 0444", "mode: 0999", 1))
        app.post_message(SourcesChanged((spec,)))
        await until(pilot, lambda: bool(app.problems) and not app.building)
        app.clear_notifications()

    return run


async def editing(pilot: Pilot[Any]) -> None:
    """The Edit pane, a file mode made invalid as you type: the problem at its line."""
    app = pilot.app
    assert isinstance(app, Workbench)
    await pilot.press("7")
    editor = app.query_one("#editor", SpecEditor)
    await until(pilot, lambda: editor.has_focus)
    row = next(i for i, line in enumerate(editor.text.splitlines()) if "file-mode: 0444" in line)
    editor.move_cursor((row, len(editor.text.splitlines()[row])))
    await pilot.press("backspace", "backspace", "backspace", *"999")
    await until(pilot, lambda: bool(editor.problems))


async def changes(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, Workbench)
    await until(pilot, lambda: bool(app.query_one("#changes", ChangesLog).text))
    await pilot.press("8")


async def main() -> None:
    os.chdir(ROOT)
    # Log lines carry wall-clock times (of the frozen clock): one zone, the same pixels.
    os.environ["TZ"] = "UTC"
    time.tzset()
    webapp = Path("examples/webapp/vinci.yaml")
    hello = Path("examples/hello/vinci.yaml")
    for spec in (webapp, hello):
        if not (spec.parent / "busybox").is_file():
            raise SystemExit(f"{spec.parent}/busybox is missing: run `bash .ci/setup` first")
    work = Path(tempfile.gettempdir()) / "vinci-screenshots"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    cache = work / "cache"
    await shoot("main", webapp, WIDE, cache, keys(layer=1))
    await shoot("contents", webapp, WIDE, cache, contents("4", "s", layer=0))
    await shoot("merged", webapp, WIDE, cache, contents("4", "v"))
    await shoot("cache", webapp, WIDE, cache, cache_view)
    await shoot("log", webapp, WIDE, cache, keys("6", "slash", *"combined", "enter"))
    await shoot("help", webapp, WIDE, cache, contents("4", "question_mark"))
    await shoot("hello-80x24", hello, (80, 24), cache)
    await shoot("stacked-70x30", hello, (70, 30), cache)
    # The broken spec is a copy: the example itself is never touched.
    copy = work / "webapp"
    shutil.copytree(webapp.parent, copy, symlinks=True)
    os.chdir(work)
    await shoot("spec-error", Path("webapp/vinci.yaml"), WIDE, cache, broken(copy / "vinci.yaml"))
    # Changes after a restart: a layout from an earlier session, a page and the inline motd
    # edited since (the motd's change comes with a text diff).
    copy.joinpath("vinci.yaml").write_text((ROOT / webapp).read_text())
    spec = Path("webapp/vinci.yaml")
    build(load_spec(spec), BuildOptions(jobs=1, cache_dir=cache, output="oci:webapp/vinci.oci"))
    page = next(p for p in sorted((copy / "site").rglob("*.html")) if not p.is_symlink())
    page.write_text(page.read_text().replace("</", "<!-- edited -->\n</", 1))
    text = copy.joinpath("vinci.yaml").read_text()
    copy.joinpath("vinci.yaml").write_text(
        text.replace("assembled by vinci\n", "assembled by vinci\n        edited since\n", 1)
    )
    await shoot("changes", spec, WIDE, cache, changes, write_layout=True)
    await shoot("editor", spec, WIDE, cache, editing)
    os.chdir(ROOT)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
