"""Layers better than dive, in the Contents pane: each layer's files marked added, modified or
removed against the layers below; `v` steps to the merged image, the largest files and the
bytes later layers hide (naming the layer that hides them); the origin column names the spec
node and the host file; and the virtual table sorts, filters and expands a layer of
thousands of files."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from tuikit import wait_built, wait_for

from vinci_tui.app import Workbench
from vinci_tui.widgets.contents import FileTable
from vinci_tui.widgets.modals import FileScreen

pytestmark = pytest.mark.anyio

SPEC = """\
spec-version: v1
layers:
  - directory: {path: /opt, source: ./tree}
  - file: {path: /opt/a.txt, contents: "new\\n"}
  - tar: {source: ./top.tar, whiteouts: true}
"""


def layered(project: Path) -> None:
    (project / "vinci.yaml").write_text(SPEC)
    (project / "tree" / "sub").mkdir(parents=True)
    (project / "tree" / "a.txt").write_bytes(b"a" * 1000)
    (project / "tree" / "b.txt").write_bytes(b"b\n\n")
    (project / "tree" / "big.bin").write_bytes(b"\0" * 5000)
    (project / "tree" / "sub" / "c.txt").write_bytes(b"c" * 200)
    with tarfile.open(project / "top.tar", "w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in {"opt/.wh.big.bin": b"", "opt/sub/new.txt": b"newer!\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def cells(table: FileTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def name_of(cell: str) -> str:
    """The name column without its change mark, tree guides and fold mark."""
    return cell[2:].split("── ")[-1].removeprefix("▾ ").removeprefix("▸ ")


def text_of(app: Workbench, selector: str) -> str:
    return str(app.query_one(selector).render())


async def test_marks_merged_largest_and_wasted_views(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    layered(project)
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        await wait_for(pilot, lambda: app.analysis is not None, what="the analysis")
        app.selected_layer = 0
        await pilot.press("4")
        table = app.query_one(FileTable)
        await wait_for(pilot, lambda: table.has_focus and table.row_count == 6)
        rows = cells(table)
        assert [r[3][0] for r in rows] == ["+"] * 6  # the first layer adds everything
        assert [name_of(r[3]) for r in rows] == [
            "opt/",
            "a.txt",
            "b.txt",
            "big.bin",
            "sub/",
            "c.txt",
        ]
        assert rows[2][4] == "directory ← ./tree/b.txt"
        summary = text_of(app, "#contents-summary")
        assert "+6 ~0 -0" in summary
        assert "5.9 KiB hidden by layers[2].tar and 1 more" in summary

        app.selected_layer = 1
        await wait_for(pilot, lambda: table.row_count == 2)
        assert [r[3][0] for r in cells(table)] == [" ", "~"]  # /opt implied; a.txt modified
        assert "+0 ~1 -0" in text_of(app, "#contents-summary")
        assert "hides 1000 B below" in text_of(app, "#contents-summary")

        app.selected_layer = 2
        await wait_for(pilot, lambda: table.row_count == 4)
        marked = {name_of(r[3]): r[3][0] for r in cells(table)}
        assert marked == {"opt/": " ", "big.bin": "-", "sub/": " ", "new.txt": "+"}
        gone = next(r for r in cells(table) if name_of(r[3]) == "big.bin")
        assert gone[2].strip() == "4.9 KiB"  # what the whiteout removed

        # v: the merged image, each file from the layer that wins.
        await pilot.press("v")
        await wait_for(pilot, lambda: "merged image" in text_of(app, "#contents-heading"))
        merged = {name_of(r[3]): r[4] for r in cells(table)}
        assert merged == {
            "opt/": "layers[0].directory",
            "a.txt": "layers[1].file",
            "b.txt": "layers[0].directory ← ./tree/b.txt",
            "sub/": "layers[0].directory",
            "c.txt": "layers[0].directory ← ./tree/sub/c.txt",
            "new.txt": "layers[2].tar",
        }
        assert "efficiency 3.4%" in text_of(app, "#contents-summary")
        # Enter on a merged file reads it from the layer it comes from.
        table.move_cursor(row=table.get_row_index("/opt/a.txt"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, FileScreen))
        await pilot.pause()
        assert str(app.screen.query_one("#file-text").render()).strip() == "new"
        await pilot.press("escape")

        # v: the largest files, a flat list of full paths.
        await pilot.press("v")
        await wait_for(pilot, lambda: "largest" in text_of(app, "#contents-heading"))
        largest = [(name_of(r[3]), r[2].strip()) for r in cells(table)]
        assert largest == [
            ("/opt/sub/c.txt", "200 B"),
            ("/opt/sub/new.txt", "7 B"),
            ("/opt/a.txt", "4 B"),
            ("/opt/b.txt", "3 B"),
        ]

        # v: the bytes hidden, each naming the layer that hides it.
        await pilot.press("v")
        await wait_for(pilot, lambda: "shadow or remove" in text_of(app, "#contents-heading"))
        wasted = [(name_of(r[3]), r[4]) for r in cells(table)]
        assert wasted == [
            ("/opt/big.bin", "layers[0].directory · removed by layers[2].tar"),
            ("/opt/a.txt", "layers[0].directory · shadowed by layers[1].file"),
        ]

        await pilot.press("v")  # and back to the layer
        await wait_for(pilot, lambda: "layer 2" in text_of(app, "#contents-heading"))
        # Each view is in the palette too.
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"contents: wasted bytes", "enter")
        await wait_for(pilot, lambda: "shadow or remove" in text_of(app, "#contents-heading"))


async def test_the_virtual_table_sorts_filters_and_expands_thousands_of_files(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    """2,500 files: above the count that opens expanded, so the layer opens folded."""
    (project / "vinci.yaml").write_text(
        "spec-version: v1\nlayers:\n  - directory: {path: /data, source: ./many}\n"
    )
    for d in range(50):
        sub = project / "many" / f"d{d:02d}"
        sub.mkdir(parents=True)
        for f in range(50):
            (sub / f"f{f:02d}").write_bytes(b"x" * ((d * 50 + f) % 97))
    app = app_factory()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_built(pilot, app)
        app.selected_layer = 0
        await pilot.press("4")
        table = app.query_one(FileTable)
        await wait_for(pilot, lambda: table.has_focus and table.row_count == 1)
        await pilot.press("e")  # expand all
        await wait_for(pilot, lambda: table.row_count == 1 + 50 + 2500)
        await pilot.press("G")
        assert table.current_path() == "/data/d49/f49"
        assert table.scroll_y > 2500 - 30  # the last rows are on screen
        assert name_of(str(table.get_row_at(table.cursor_row)[3])) == "f49"
        await pilot.press("s")  # by size: the heaviest directory first
        await pilot.pause()
        assert table.current_path() == "/data/d49/f49"  # the cursor stays on its file
        sizes = {d: sum((d * 50 + f) % 97 for f in range(50)) for d in range(50)}
        heaviest = max(sizes, key=lambda d: (sizes[d], -d))
        assert table.get_row_at(1)[3].plain.endswith(f"d{heaviest:02d}/")
        await pilot.press("slash", *"f07")
        await wait_for(pilot, lambda: table.row_count == 1 + 50 + 50)
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.row_count == 2551)
        await pilot.press("E")  # collapse all
        await wait_for(pilot, lambda: table.row_count == 1)
        await pilot.press("enter")  # opens data/
        await wait_for(pilot, lambda: table.row_count == 51)
        # A click picks the row under the mouse (line 0 is the header).
        await pilot.click(FileTable, offset=(40, 3))
        assert table.cursor_row == 2
        assert table.current_path() == "/data/" + name_of(table.get_row_at(2)[3].plain)[:-1]
        await pilot.press("pagedown")
        page = table.size.height - 1  # less the header
        assert table.cursor_row == 2 + page
        assert table.scroll_y <= table.cursor_row < table.scroll_y + page  # still in view
