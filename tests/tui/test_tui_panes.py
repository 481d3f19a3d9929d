"""Pilot tests of the panes: selection across panes, navigation, the log filter, the file tree
(sort, filter, view, imported layers), the cache browser, copying digests, help, rebinding,
and the stacked layout of narrow terminals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Input, TabbedContent
from tuikit import wait_built, wait_for

import engine
from engine import BuildOptions
from vinci_tui.app import Workbench
from vinci_tui.widgets.cache import CacheTable
from vinci_tui.widgets.contents import FileTable
from vinci_tui.widgets.details import DetailsTable
from vinci_tui.widgets.layers import LayersTable
from vinci_tui.widgets.log import BuildLog
from vinci_tui.widgets.modals import ConfirmScreen, FileScreen, GcOptionsScreen, HelpScreen
from vinci_tui.widgets.spec_tree import SpecTree

pytestmark = pytest.mark.anyio


def names(table: FileTable) -> list[str]:
    """The names column without tree guides and fold marks."""
    cells = [str(table.get_row_at(i)[3]) for i in range(table.row_count)]
    return [c.split("── ")[-1].removeprefix("▾ ").removeprefix("▸ ") for c in cells]


def details_values(app: Workbench) -> list[str]:
    details = app.query_one(DetailsTable)
    return [str(details.get_row_at(i)[1]) for i in range(details.row_count)]


async def test_selecting_a_spec_node_selects_its_layer_everywhere(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        assert app.selected_layer == 0
        tree = app.query_one(SpecTree)
        node = tree.node_for_key("layers[2].combined")
        assert node is not None
        await pilot.press("1")
        await pilot.pause()
        assert app.focused is tree
        tree.move_cursor(node)
        await pilot.pause()
        assert app.selected_layer == 2
        table = app.query_one(LayersTable)
        assert table.cursor_row == 2
        assert "Layer 2 · layers[2].combined · combined (2 items)" in details_values(app)
        assert names(app.query_one(FileTable)) == ["etc/", "motd", "srv/", "current -> /srv/site"]
        # And back: moving in the Layers pane moves the tree's cursor into that layer.
        await pilot.press("2", "up")
        await pilot.pause()
        assert app.selected_layer == 1
        assert tree.cursor_node is not None and tree.cursor_node.data is not None
        assert tree.cursor_node.data.key == "layers[1].directory"


async def test_number_keys_and_tab_move_between_panes(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        tabs = app.query_one(TabbedContent)
        expected = {
            "1": ("spec", None),
            "2": ("layers", None),
            "3": ("details", "details-tab"),
            "4": ("contents", "contents-tab"),
            "5": ("cache", "cache-tab"),
            "6": ("log", "log-tab"),
        }
        for key, (pane, tab) in expected.items():
            await pilot.press(key)
            await pilot.pause()
            assert app.focused_pane() == pane
            if tab is not None:
                assert tabs.active == tab
        await pilot.press("2", "tab")
        await pilot.pause()
        assert app.focused_pane() != "layers"
        await pilot.press("shift+tab")
        await pilot.pause()
        assert app.focused_pane() == "layers"


async def test_log_filter_highlights_or_shows_only_matches(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        log = app.query_one(BuildLog)
        every = len(log.lines_kept)
        # Every engine event is in the log, one line each (progress at phase boundaries).
        assert sum("queued" in t for _, t in log.lines_kept) == 3
        assert any(t.startswith("build finished in 0.2 s") for _, t in log.lines_kept)
        await pilot.press("6", "slash")
        await pilot.pause()
        assert isinstance(app.focused, Input)
        await pilot.press(*"DONE,")
        await pilot.pause()
        assert log.needle == "DONE,"
        assert len(log.matching()) == 3
        assert len(log.lines) == every  # highlighted, nothing hidden
        await pilot.press("enter")  # keep the filter, back to the log
        await pilot.pause()
        assert app.focused is log
        await pilot.press("m")
        await pilot.pause()
        assert len(log.lines) == 3  # only the matching lines
        assert "3 of" in str(app.query_one("#log-heading").render())
        await pilot.press("slash", "escape")
        await pilot.pause()
        assert log.needle == "" and len(log.lines) == every
        # `/` from a pane that cannot filter opens the log's filter.
        await pilot.press("2", "slash")
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "log-tab"
        assert isinstance(app.focused, Input)


async def test_contents_tree_sort_filter_and_view(app_factory: Callable[..., Workbench]) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        app.selected_layer = 1
        await pilot.press("4")
        await pilot.pause()
        table = app.query_one(FileTable)
        assert names(table) == [
            "srv/",
            "site/",
            "about.html",
            "assets/",
            "app.js",
            "style.css",
            "index.html",
        ]
        row = table.get_row_at(4)
        assert [str(c) for c in row[:3]] == ["-rw-r--r--", "0:0", " 3.7 KiB "]
        # Within layers[1] (named in the heading), from the host file the spec names.
        assert str(row[4]) == "directory ← ./site/assets/app.js"
        table.move_cursor(row=5)
        assert table.current_path() == "/srv/site/assets/style.css"
        await pilot.press("s")
        await pilot.pause()
        assert names(table)[2:5] == ["assets/", "app.js", "style.css"]
        assert table.current_path() == "/srv/site/assets/style.css"  # the cursor stays on it
        assert "sort: size" in str(app.query_one("#contents-heading").render())
        await pilot.press("slash", *"about")
        await pilot.pause()
        assert names(table) == ["srv/", "site/", "about.html"]
        await pilot.press("enter")  # back to the table, filter kept
        await pilot.pause()
        table.move_cursor(row=2)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, FileScreen))
        await pilot.pause()
        assert str(app.screen.query_one("#file-text").render()).strip() == "<p>about</p>"
        await pilot.press("escape")
        await pilot.pause()
        # Folding a directory hides what is below it.
        await pilot.press("slash", "escape")
        table.move_cursor(row=1)
        await pilot.press("space")
        await pilot.pause()
        assert names(table) == ["srv/", "site/"]


async def test_contents_of_an_imported_layer_come_from_its_blob(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    """An import has no plan: each of its image layers is streamed from its blob in a
    thread, and `]` steps through them."""
    engine.build(
        project / "vinci.yaml",
        BuildOptions(
            codec="zstd", jobs=1, cache_dir=project / "base-cache", output=f"oci:{project}/base.oci"
        ),
    )
    (project / "vinci.yaml").write_text(
        "spec-version: v1\n"
        "layers:\n"
        "  - import: ./base.oci\n"
        "  - file: {path: /etc/motd, contents: on top}\n"
    )
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        assert app.result is not None and app.result.layers[0].plan is None
        await pilot.press("4")
        table = app.query_one(FileTable)
        await wait_for(pilot, lambda: names(table) == ["app/", "run.sh"], what="layer 1 of 3")
        assert str(table.get_row_at(1)[4]) == "import"
        heading = str(app.query_one("#contents-heading").render())
        assert "image layer 1/3" in heading
        await pilot.press("right_square_bracket", "right_square_bracket")
        await wait_for(pilot, lambda: len(names(table)) == 4, what="layer 3 of 3")
        assert names(table) == ["etc/", "motd", "srv/", "current -> /srv/site"]
        table.move_cursor(row=1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, FileScreen))
        await pilot.pause()
        assert "welcome to the workbench" in str(app.screen.query_one("#file-text").render())


async def test_cache_browser_lists_verifies_and_collects(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        await pilot.press("5")
        table = app.query_one(CacheTable)
        await wait_for(pilot, lambda: table.row_count == 5, what="the cache listing")
        users = [str(table.get_row_at(i)[-1]) for i in range(table.row_count)]
        assert sorted(users) == sorted(
            [
                "this spec: layers[0]",
                "this spec: layers[1]",
                "this spec: layers[2]",
                "this spec: manifest",
                "this spec: config",
            ]
        )
        assert "5 blobs" in str(app.query_one("#cache-heading").render())
        log = app.query_one(BuildLog)
        await pilot.press("v")
        await wait_for(pilot, lambda: any("verified 5 blobs: ok" in t for _, t in log.lines_kept))
        # Garbage collection asks what to keep (escape cancels); with the defaults, the
        # latest build is referenced and nothing of it would go: no removal is offered.
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, GcOptionsScreen))
        await pilot.press("escape")
        await pilot.pause()
        assert not any("gc would" in t for _, t in log.lines_kept)
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, GcOptionsScreen))
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: any("gc would remove 0 blob(s)" in t for _, t in log.lines_kept)
        )
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("slash", *"manifest")
        await pilot.pause()
        assert table.row_count == 1


async def test_copy_digests(app_factory: Callable[..., Workbench]) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        assert app.result is not None
        app.selected_layer = 1
        await pilot.press("2", "y")
        assert app.clipboard == str(app.result.layers[1].record.descriptors[0].digest)
        await pilot.press("Y")
        assert app.clipboard == str(app.result.manifest.digest)
        # In Details, y copies the value of the row under the cursor (here: the config digest).
        await pilot.press("3")
        await pilot.pause()
        details = app.query_one(DetailsTable)
        details.move_cursor(row=details_values(app).index(str(app.result.config.digest)))
        await pilot.press("y")
        assert app.clipboard == str(app.result.config.digest)


async def test_help_shows_the_focused_panes_keys(app_factory: Callable[..., Workbench]) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        await pilot.press("4", "question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        assert screen.title_text == "Contents pane"
        (local, everywhere) = screen.sections
        assert ("s", "Sort name/size", "contents.sort") in local[1]
        assert ("r", "Build", "build-now") in everywhere[1]
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))


async def test_keys_can_be_rebound(project: Path, app_factory: Callable[..., Workbench]) -> None:
    (project / "keys.toml").write_text(
        '[keys]\nbuild-now = "b"\n"contents.sort" = ["o", "ctrl+o"]\nno-such-action = "z"\n'
    )
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        assert app.keymap_problems == [
            f"{project / 'keys.toml'}: unknown binding id 'no-such-action'"
        ]
        await pilot.press("r")  # no longer bound
        await pilot.pause()
        assert app.runner.generation == 1
        await pilot.press("b")
        await wait_built(pilot, app, generation=2)
        await pilot.press("4", "o")
        await pilot.pause()
        assert app.query_one(FileTable).sort_by == "size"


async def test_narrow_terminals_get_a_stacked_layout(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_built(pilot, app)
        assert app.screen.has_class("-normal")
        spec = app.query_one("#spec-pane")
        layers = app.query_one("#layers-pane")
        assert spec.region.right <= layers.region.x  # side by side
        assert [k for k, _, _ in app.query_one(LayersTable)._columns] == [
            "index",
            "layer",
            "state",
            "progress",
            "size",
        ]
        await pilot.resize_terminal(70, 30)
        await pilot.pause()
        assert app.screen.has_class("-narrow")
        assert spec.region.bottom <= layers.region.y  # stacked
        await pilot.resize_terminal(120, 36)
        await pilot.pause()
        assert "digest" in [k for k, _, _ in app.query_one(LayersTable)._columns]


async def test_palette_commands_are_named_area_action(
    app_factory: Callable[..., Workbench],
) -> None:
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "build: build now" in titles and "cache: verify" in titles
        assert "view: contents" in titles
        assert "push: push image" in titles  # the spec names an image
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"watch: toggle", "enter")
        await wait_for(pilot, lambda: app.watching)
