"""The workbench: `vinci tui [SPEC]`.

    ┌ status: spec · build state · watch · manifest digest ──────────────────────┐
    │ 1 Spec (tree)   │ 2 Layers (live rows)                                       │
    │                 ├ 3 Details │ 4 Contents │ 5 Cache │ 6 Log ──────────────────┤
    │                 │                                                            │
    └ footer: keys ─────────────────────────────────────────────────────────────────┘

The app owns the flow; the panes only show what they are given. Builds run in worker threads
(vinci_tui.runner) and report through messages (vinci_tui.messages); the watcher is an async
worker on the app's loop (vinci_tui.watch). The UI thread never waits on a worker, except once
when quitting, to join the cancelled ones.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from rich.text import Text
from textual.app import App, ComposeResult, SuspendNotSupported, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static, TabbedContent, TabPane

import engine
from engine import BuildCancelled, BuildOptions, VinciError
from engine.analysis import ImageAnalysis, analyze_result
from engine.builder.plan import LayerPlan
from engine.builder.result import BuildResult
from engine.cache.maintenance import (
    DEFAULT_KEEP_DAYS,
    GcPlan,
    apply_garbage,
    list_entries,
    plan_garbage,
    remove_blobs,
    verify,
)
from engine.cache.store import BlobStore
from engine.errors import SpecProblem, describe_os_error
from engine.events import (
    BuildFailed,
    BuildFinished,
    BuildStarted,
    LayerFailed,
    LayerProgress,
    PushFinished,
)
from engine.humanize import human_bytes
from engine.inspection import (
    InputChange,
    LayerInfo,
    entries_from_blob,
    image_from_result,
    input_changes,
    read_layer_file,
)
from engine.oci.descriptor import Descriptor
from engine.oci.digest import Digest
from engine.spec.locate import find_spec, locate_spec
from engine.spec.model import Spec, layer_summary
from vinci_tui import keymap
from vinci_tui.clock import Clock
from vinci_tui.commands import PANES, palette_commands
from vinci_tui.fmt import short_digest
from vinci_tui.messages import (
    BuildCompleted,
    BuildEnded,
    ChangesFound,
    EngineEvent,
    EventBridge,
    LogLine,
    SourcesChanged,
    SpecBroken,
    SpecLoaded,
    TaskFinished,
)
from vinci_tui.model import BuildModel, describe
from vinci_tui.runner import THREAD_PREFIX, BuildFunction, BuildRunner, TaskRunner
from vinci_tui.watch import DEBOUNCE_MS, STEP_MS, WatchTargets, watch, watch_targets
from vinci_tui.widgets.cache import CacheTable, CacheView, totals
from vinci_tui.widgets.changes import ChangesLog, ChangesView
from vinci_tui.widgets.contents import ContentsView, FileTable
from vinci_tui.widgets.details import DetailsTable, LayerChanges
from vinci_tui.widgets.editor import EditorView, SpecEditor
from vinci_tui.widgets.filter import FilterBar
from vinci_tui.widgets.layers import LayersTable
from vinci_tui.widgets.layerviews import CONTENTS_VIEWS, ContentsShow, contents_show
from vinci_tui.widgets.log import BuildLog, LogView
from vinci_tui.widgets.modals import (
    AskScreen,
    ConfirmScreen,
    FileScreen,
    GcOptions,
    GcOptionsScreen,
    HelpScreen,
)
from vinci_tui.widgets.spec_tree import SpecTree

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hello" / "vinci.yaml"
TABS = PANES[2:]  # the panes in the tabbed area
FILE_VIEW_LIMIT = 256 * 1024

PANE_HELP = {
    "spec": SpecTree.HELP,
    "layers": LayersTable.HELP,
    "details": DetailsTable.HELP,
    "contents": FileTable.HELP,
    "cache": CacheTable.HELP,
    "log": BuildLog.HELP,
    "changes": ChangesLog.HELP,
    "editor": SpecEditor.HELP,
}


_Handler = TypeVar("_Handler", bound=Callable[..., None])


def from_worker(handler: _Handler) -> _Handler:
    """For handlers of messages posted by worker threads: one may arrive while the app is
    being torn down (its widgets already gone); it is dropped then."""

    @functools.wraps(handler)
    def guarded(self: App[Any], message: Any) -> None:
        if self.is_running:
            handler(self, message)

    return guarded  # type: ignore[return-value]


class Workbench(App[int]):
    """Author a spec, watch it rebuild, inspect its layers and the cache."""

    CSS_PATH = "workbench.tcss"
    TITLE = "vinci"
    HORIZONTAL_BREAKPOINTS = [
        (0, "-narrow"),
        (80, "-normal"),
        (110, "-wide"),
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="quit"),
        # As in dive, lazydocker and k9s; a priority binding so that it quits from any pane
        # (it still asks while a build runs).
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True, id="quit-ctrl-c"),
        Binding("z,f10", "maximize_pane", "Maximize", show=False, id="maximize"),
        Binding("e", "open_editor", "$EDITOR", show=False, id="open-editor"),
        Binding(
            "less_than_sign", "resize_spec(-4)", "Narrower spec", show=False, id="spec-narrower"
        ),
        Binding("greater_than_sign", "resize_spec(4)", "Wider spec", show=False, id="spec-wider"),
        Binding("question_mark,f1", "help", "Help", id="help"),
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("r", "build", "Build", id="build-now"),
        Binding("w", "toggle_watch", "Watch", id="toggle-watch"),
        Binding("p", "push", "Push", id="push"),
        Binding("P", "next_platform", "Next platform", show=False, id="next-platform"),
        Binding("c", "cancel_build", "Cancel build or push", show=False, id="cancel-build"),
        Binding("y", "copy_digest", "Copy digest", show=False, id="copy-digest"),
        Binding("Y", "copy_manifest", "Copy manifest digest", show=False, id="copy-manifest"),
        *(
            Binding(str(i), f"focus_pane('{name}')", name.title(), show=False, id=f"focus-{name}")
            for i, name in enumerate(PANES, 1)
        ),
    ]

    selected_layer: reactive[int | None] = reactive(None, init=False)
    watching: reactive[bool] = reactive(False, init=False)

    def __init__(
        self,
        spec_path: Path,
        options: BuildOptions | None = None,
        *,
        build: BuildFunction = engine.build,
        watch: bool = True,
        clock: Clock | None = None,
        keymap_path: Path | None = None,
        write_layout: bool = True,
        cursor_blink: bool = True,
        debounce_ms: int = DEBOUNCE_MS,
    ) -> None:
        super().__init__()
        self.spec_path = Path(spec_path)
        self.options = options or BuildOptions()
        self.store = BlobStore(self.options.cache_dir)
        self.clock = clock or Clock()
        self.keymap_path = keymap_path or keymap.default_path()
        self.cursor_blink = cursor_blink
        self.debounce_ms = debounce_ms
        self._watch_at_start = watch
        self.runner = BuildRunner(self.options, self.store, self.post_message, build, write_layout)
        self.tasks = TaskRunner(self.post_message)
        self.spec: Spec | None = None  # the last spec that loaded
        self.problems: tuple[SpecProblem, ...] = ()  # of the spec file as it is now
        self.result: BuildResult | None = None  # the last build that completed
        self.model = BuildModel(self.clock)  # the build on screen
        self.good_model: BuildModel | None = None  # the last build that finished
        self.changes: dict[int, tuple[InputChange, ...] | None] = {}
        self._plans: dict[str, LayerPlan] = {}
        self._targets: WatchTargets | None = None
        self._contents_key: tuple[str, int, int] | None = None
        self._contents_part = 0
        self._contents_view = "layer"  # layer | merged | largest | wasted
        self._contents_shown: tuple[object, ...] | None = None  # what the table holds
        self.analysis: ImageAnalysis | None = None  # of self.result, once computed
        self._blob_entries: dict[str, Any] = {}  # layer digest -> entries read from its blob
        self._cache_dirty = True
        # gc's options as last asked for, offered again (first: the command line's defaults).
        self._gc_options = GcOptions(DEFAULT_KEEP_DAYS, None)
        self._pending_file = ""  # the path whose contents were asked for
        self._started = 0  # the last build generation the engine began
        self._ended = 0  # the last build generation whose thread the UI saw end
        self.keymap_problems: list[str] = []
        self.pushed = ""  # "pushed to REF (tags) at TIME (N sent in S), manifest …"
        self.pushed_short = ""  # "pushed REF:TAG at TIME", for the status line

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("", id="status")
        with Horizontal(id="main"):
            with Vertical(id="spec-pane", classes="pane"):
                yield FilterBar("filter the spec…", id="spec-filter", blink=self.cursor_blink)
                yield SpecTree(id="spec")
            with Vertical(id="right"):
                with Vertical(id="layers-pane", classes="pane"):
                    yield FilterBar("filter layers…", id="layers-filter", blink=self.cursor_blink)
                    yield LayersTable(self.clock, id="layers")
                with TabbedContent(id="tabs", initial="details-tab"):
                    with TabPane("3 Details", id="details-tab"):
                        yield FilterBar(
                            "filter details…", id="details-filter", blink=self.cursor_blink
                        )
                        yield DetailsTable(self.clock, id="details")
                    with TabPane("4 Contents", id="contents-tab"):
                        yield ContentsView(blink=self.cursor_blink, id="contents")
                    with TabPane("5 Cache", id="cache-tab"):
                        yield CacheView(self.clock, blink=self.cursor_blink, id="cache")
                    with TabPane("6 Log", id="log-tab"):
                        yield LogView(self.clock, blink=self.cursor_blink, id="logview")
                    with TabPane("7 Edit", id="editor-tab"):
                        yield EditorView(blink=self.cursor_blink, id="editorview")
                    with TabPane("8 Changes", id="changes-tab"):
                        yield ChangesView(id="changesview")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#spec-pane").border_title = "1 Spec"
        self._load_keymap()
        self.query_one(SpecTree).show_spec(None)
        self._update_titles()
        self.query_one(LayersTable).focus()
        self.log_line("info", f"workbench started on {self.display_path(self.spec_path)}")
        self._open_in_editor()
        self.watching = self._watch_at_start
        self.start_build("start")

    def _load_keymap(self) -> None:
        known = keymap.binding_ids(self.BINDINGS)
        for cls in (
            SpecTree,
            LayersTable,
            DetailsTable,
            FileTable,
            CacheTable,
            BuildLog,
            ChangesLog,
            FilterBar,
            ConfirmScreen,
            HelpScreen,
            FileScreen,
            AskScreen,
            GcOptionsScreen,
            SpecEditor,
        ):
            known |= keymap.binding_ids(cls.BINDINGS)
        bindings, problems = keymap.load_keymap(self.keymap_path, known)
        self.keymap_problems = problems
        if bindings:
            self.set_keymap(bindings)
            self.log_line("info", f"keys from {self.keymap_path}: {len(bindings)} rebound")
        for problem in problems:
            self.log_line("warning", problem)
            self.notify(problem, severity="warning", title="key bindings")

    # -- the build -------------------------------------------------------------------------

    @property
    def building(self) -> bool:
        """A build was started and the UI has not yet seen its end (or its thread still runs)."""
        return self._ended != self.runner.generation or self.runner.busy

    def start_build(self, reason: str) -> int:
        generation = self.runner.start(self.spec_path)
        self.log_line("info", f"build {generation}: {reason}")
        self._update_titles()
        return generation

    def _stale(self, generation: int) -> bool:
        return generation != self.runner.generation

    @from_worker
    def on_spec_loaded(self, message: SpecLoaded) -> None:
        if self._stale(message.generation):
            return
        previous, self.spec = self.spec, message.spec
        self.problems = ()
        self._open_in_editor()  # the file may have changed on disk (kept if edited here)
        self.query_one(SpecTree).show_spec(self.spec)
        moved = follow_node(previous, self.spec, self.selected_layer)
        if moved != self.selected_layer:
            self.selected_layer = moved  # the same node, at its new index
        self.query_one(LayersTable).names = {
            i: layer_summary(node) for i, node in enumerate(self.spec.layers)
        }
        self._retarget_watch()
        self._update_titles()

    @from_worker
    def on_spec_broken(self, message: SpecBroken) -> None:
        if self._stale(message.generation):
            return
        self.problems = tuple(message.error.problems)
        self._open_in_editor()
        self.query_one(SpecTree).show_spec(self.spec, self.problems)
        for problem in self.problems:
            self.log_line("error", f"spec: {problem}")
        if not os.path.exists(self.spec_path):
            self.log_line(
                "error",
                f"{self.display_path(self.spec_path)} is gone (deleted or renamed); the last "
                "good build stays on screen, the Edit pane keeps its text",
            )
        if self.good_model is not None and self.model is not self.good_model:
            # A problem found while planning comes after the build began: put the last
            # good build back on screen.
            self.model = self.good_model
            self.query_one(LayersTable).show_model(self.model)
        self.notify(
            f"{len(self.problems)} problem(s); showing the last good build",
            title="spec does not load",
            severity="error",
        )
        self._retarget_watch()
        self._show_details()
        self._update_titles()

    @from_worker
    def on_engine_event(self, message: EngineEvent) -> None:
        if self._stale(message.generation):
            return
        event = message.event
        if isinstance(event, BuildStarted):
            self._started = message.generation
            self.model = BuildModel(self.clock)
            # One queued row per layer node at once, so the table is rebuilt once and its
            # cursor goes straight back to the selected layer, not through row 0.
            if self.spec is not None and len(self.spec.layers) == event.layer_count:
                self.model.seed(len(self.spec.layers))
            self.query_one(LayersTable).show_model(self.model)
            self.query_one(SpecTree).mark_failed(set())
            if self.selected_layer is None and event.layer_count:
                self.selected_layer = 0  # the first layer, until the user picks another
        new_phase = False
        if isinstance(event, LayerProgress):
            row = self.model.rows.get(event.index)
            new_phase = row is None or row.phase != event.phase
        changed = self.model.apply(event)
        if isinstance(event, LayerFailed | BuildFailed):
            # Shown in narrow places (a row, the status line, Details): paths under the
            # current directory are shortened there; the log keeps the full message.
            self.model.error = self.shorten(self.model.error)
            for index in changed:
                self.model.rows[index].error = self.shorten(self.model.rows[index].error)
        self.query_one(LayersTable).refresh_rows(changed)
        line = describe(self.model, event, new_phase)
        if line is not None:
            self.log_line(*line)
        if isinstance(event, BuildFinished):
            self.good_model = self.model
        if isinstance(event, PushFinished) and line is not None:
            # Kept on screen (status line, Details) until the next push, not only a toast.
            self.pushed = line[1]
            at = time.strftime("%H:%M:%S", time.localtime(self.clock.wall()))
            self.pushed_short = f"pushed {event.target}:{(event.tags or ('',))[0]} at {at}"
            self._show_details()
        if isinstance(event, BuildFailed) and not event.cancelled:
            self.notify(
                event.error.splitlines()[0], title="build failed", severity="error", timeout=4
            )
            failed = {r.index for r in self.model.rows.values() if r.error}
            self.query_one(SpecTree).mark_failed(failed)
        if isinstance(event, BuildFinished | BuildFailed):
            self._show_details()
        # Progress too: the titles carry the time left (progress is throttled at the source).
        self._update_titles()

    @from_worker
    def on_build_completed(self, message: BuildCompleted) -> None:
        if self._stale(message.generation):
            return
        result = message.result
        plans: dict[str, LayerPlan] = {}
        self.changes = {}
        for layer in result.layers:
            if layer.plan is None:
                self.changes[layer.index] = None
                continue
            before = self._plans.get(layer.label)
            self.changes[layer.index] = (
                None if before is None else tuple(input_changes(before, layer.plan))
            )
            plans[layer.label] = layer.plan
        self._plans = plans
        self.result = result
        if self.selected_layer is None and result.layers:
            self.selected_layer = 0
        elif self.selected_layer is not None and self.selected_layer >= len(result.layers):
            self.selected_layer = len(result.layers) - 1 if result.layers else None
        self._cache_dirty = True
        self._analyze(result)
        # The panes show the new result where they are: no cursor moves (the spec tree's
        # cursor and expansion are the user's), only Details and Contents follow.
        self._show_details()
        self._show_contents()
        self._update_titles()

    @from_worker
    def on_build_ended(self, message: BuildEnded) -> None:
        if not self._stale(message.generation):
            self._ended = message.generation
        self._update_titles()

    @from_worker
    def on_sources_changed(self, message: SourcesChanged) -> None:
        names = ", ".join(self.display_path(p) for p in message.paths) or "(unknown)"
        self.log_line("watch", f"watch: {names} changed")
        self.start_build(f"{names} changed")

    @from_worker
    def on_changes_found(self, message: ChangesFound) -> None:
        if self._stale(message.generation):
            return
        text = self.shorten(message.text)  # paths under the current directory, relative
        rows = [replace(r, text=self.shorten(r.text)) for r in message.rows]
        self.query_one(ChangesView).show(message.since, text, message.identical, rows)

    @from_worker
    def on_log_line(self, message: LogLine) -> None:
        self.log_line(message.level, message.text)

    def log_line(self, level: str, text: str) -> None:
        self.query_one(BuildLog).add(level, text)
        self.query_one(LogView).update_heading()

    # -- selection -------------------------------------------------------------------------

    def on_spec_tree_layer_selected(self, message: SpecTree.LayerSelected) -> None:
        self.selected_layer = message.index

    def on_spec_tree_go_to(self, message: SpecTree.GoTo) -> None:
        self.go_to(message.line, message.column)

    def on_changes_log_go_to(self, message: ChangesLog.GoTo) -> None:
        self.go_to(message.line, message.column)

    def go_to(self, line: int, column: int) -> None:
        """Show a spec line and column (a problem's, a change's) in the Edit pane, cursor on it."""
        self.action_focus_pane("editor")
        editor = self.query_one(SpecEditor)
        row = max(0, min(line - 1, editor.document.line_count - 1))
        editor.move_cursor((row, max(0, column - 1)), center=True)

    def on_layers_table_layer_selected(self, message: LayersTable.LayerSelected) -> None:
        self.selected_layer = message.index

    def watch_selected_layer(self, index: int | None) -> None:
        self._contents_part = 0
        self._sync_selection()

    def _sync_selection(self) -> None:
        index = self.selected_layer
        if index is not None:
            self.query_one(SpecTree).select_layer(index)
            self.query_one(LayersTable).select_layer(index)
        self._show_details()
        self._show_contents()
        self._update_titles()

    def stale_reason(self) -> str:
        """Why the result on screen is not the spec as it is now ("" when it is)."""
        if self.problems:
            return "the spec does not load"
        if self.model.status == "failed":
            return "the last build failed"
        if self.model.status == "cancelled":
            return "the last build was cancelled"
        return ""

    def _show_details(self) -> None:
        notes = []
        if self.problems:
            notes.append(
                "✗ The spec does not load (see the Spec pane); below is the last good build."
            )
        elif self.model.status in ("failed", "cancelled"):
            what = "failed" if self.model.status == "failed" else "was cancelled"
            first = self.model.error.splitlines()[0] if self.model.error else ""
            notes.append(f"✗ This build {what}" + (":" if first else "."))
            if first:
                notes.append(f"  {first}")
            if self.result is not None:
                digest = short_digest(self.result.manifest.digest)
                notes.append(f"Below is the last good build (sha256:{digest}).")
        index = self.selected_layer
        row = self.model.rows.get(index) if index is not None else None
        if row is not None and row.state == "failed" and row.error:
            notes.append(f"✗ layer {index} failed here (the row is marked in Layers).")
        note = "\n".join(notes)
        changes = LayerChanges(self.changes.get(index)) if index is not None else None
        details = self.query_one(DetailsTable)
        details.pushed = self.pushed
        details.show(self.result, index, changes, note)

    def _layer_parts(self, index: int) -> list[LayerInfo]:
        if self.result is None:
            return []
        return [i for i in image_from_result(self.result).layers if i.node == index]

    def _analyze(self, result: BuildResult) -> None:
        """What each layer adds, modifies, removes and hides (engine.analysis), in a thread:
        imported layers are streamed from their blobs (once per digest)."""
        self.analysis = None
        store, known = self.store, self._blob_entries
        self.tasks.start(
            "analysis", lambda token: (result, analyze_result(result, store, token, known))
        )

    def _done_analysis(self, done: Any) -> None:
        result, analysis = done
        if result is self.result:
            self.analysis = analysis
            if self._contents_key is None or self._contents_key[1] != -1:  # not a cache blob
                self._show_contents()

    def _show_contents(self) -> None:
        view = self.query_one(ContentsView)
        result, index = self.result, self.selected_layer
        if self._contents_view == "layer" and (result is None or index is None):
            view.set_heading(Text("no layer selected", style="dim"))
            view.set_summary("")
            view.table.clear_entries()
            self._contents_key = self._contents_shown = None
            return
        if result is None:
            return
        parts = self._layer_parts(index) if index is not None else []
        part = self._contents_part % len(parts) if parts else 0
        info = parts[part] if parts else None
        if info is not None and index is not None:
            self._contents_key = (str(info.descriptor.digest), index, part)
        show = contents_show(
            self._contents_view, result, self.analysis, index, info, view.table.sort_by
        )
        view.set_heading(show.heading)
        view.set_summary(show.summary)
        if show.key == self._contents_shown:
            return
        # The same view of the same node and part, rebuilt: the pane keeps the user's place.
        keep = self._contents_shown is not None and self._contents_shown[1:] == show.key[1:]
        self._contents_shown = show.key
        self._fill_contents(show, keep)

    def _fill_contents(self, show: ContentsShow, keep: bool) -> None:
        table = self.query_one(ContentsView).table
        if show.flat is not None:
            table.show_flat(show.flat, keep=keep)
        elif show.entries is not None:
            table.show_entries(show.entries, show.node_label, keep=keep)
        elif show.blob is not None:
            # No analysis yet and no plan: the layer's own blob, in a thread.
            table.clear_entries()
            store, label, descriptor, key = self.store, show.node_label, show.blob, show.key
            self.tasks.start(
                "contents",
                lambda token: (key, label, entries_from_blob(store, descriptor, label, token)),
            )
        else:
            table.clear_entries()

    def on_file_table_part_change(self, message: FileTable.PartChange) -> None:
        self._contents_part += message.step
        self._show_contents()

    def on_file_table_sort_changed(self, message: FileTable.SortChanged) -> None:
        self._show_contents()

    def on_file_table_view_change(self, message: FileTable.ViewChange) -> None:
        self.set_contents_view(
            CONTENTS_VIEWS[(CONTENTS_VIEWS.index(self._contents_view) + 1) % len(CONTENTS_VIEWS)]
        )

    def set_contents_view(self, name: str) -> None:
        """Show the layer's files, the merged image, the largest files or the wasted bytes."""
        self._contents_view = name
        self._contents_shown = None
        self._show_contents()

    def on_file_table_view_file(self, message: FileTable.ViewFile) -> None:
        if self.result is None or self._contents_key is None:
            return
        _digest, index, part = self._contents_key
        parts = self._layer_parts(index)
        entry = self.query_one(ContentsView).table.current_entry()
        if self._contents_view != "layer" and entry is not None and entry.layer >= 0:
            # Merged, largest, wasted: the file is in the layer the row names.
            parts = [image_from_result(self.result).layers[entry.layer]]
            part = 0
        if not parts:
            return
        info = parts[part % len(parts)]
        store, path = self.store, message.path
        self._pending_file = path
        self.tasks.start(
            "file",
            lambda token: read_layer_file(store, info.descriptor, path, FILE_VIEW_LIMIT, token),
        )

    # -- background task results -----------------------------------------------------------

    @from_worker
    def on_task_finished(self, message: TaskFinished) -> None:
        if message.ticket != self.tasks.current(message.group):
            return
        if message.group == "push":
            self.query_one(LayersTable).refresh_rows(self.model.settle())
        result = message.result
        handler = getattr(self, f"_done_{message.group.replace('-', '_')}", None)
        if isinstance(result, BuildCancelled) and message.group == "push":
            self.log_line("warning", "push cancelled: nothing was tagged")
            self.notify("push cancelled", title="push", severity="warning")
            self._update_titles()
            return
        if isinstance(result, BaseException) and message.group != "file":
            text = describe_os_error(result) if isinstance(result, OSError) else str(result)
            self.log_line("error", f"{message.group}: {text}")
            self.notify(text, title=message.group, severity="error")
            self._update_titles()
            return
        if handler is not None:
            handler(result)

    def _done_contents(self, result: Any) -> None:
        key, label, entries = result
        if key in (self._contents_key, self._contents_shown):
            self.query_one(ContentsView).table.show_entries(entries, label)

    def _done_file(self, result: Any) -> None:
        path = self._pending_file
        if isinstance(result, BaseException):
            self.push_screen(FileScreen(path, None, str(result)))
        else:
            self.push_screen(FileScreen(path, result))

    def refresh_cache(self) -> None:
        self._cache_dirty = False
        store = self.store
        self.query_one(CacheView).set_heading(Text("listing the cache…", style="dim"))
        self.tasks.start("cache-list", lambda _token: list_entries(store))

    def _done_cache_list(self, entries: Any) -> None:
        view = self.query_one(CacheView)
        users: dict[str, list[str]] = {}
        if self.result is not None:
            for layer in self.result.layers:
                for d in layer.record.descriptors:
                    users.setdefault(str(d.digest), []).append(f"layers[{layer.index}]")
            users.setdefault(str(self.result.manifest.digest), []).append("manifest")
            users.setdefault(str(self.result.config.digest), []).append("config")
        spec = str(self.spec.path) if self.spec is not None else str(self.spec_path)
        view.table.show_entries(entries, spec, users)
        self._cache_heading()

    def _cache_heading(self) -> None:
        view = self.query_one(CacheView)
        heading = Text.assemble((totals(view.table.entries), "bold"))
        if view.table.corrupt:
            heading.append(f"  ✗ {len(view.table.corrupt)} corrupt (d removes)", style="bold red")
        heading.append(f"  in {self.store.root}", style="dim")
        view.set_heading(heading)

    def on_cache_table_open_layer(self, message: CacheTable.OpenLayer) -> None:
        """A layer blob chosen in the Cache pane: its files in Contents, read from the cache."""
        entry = message.entry
        digest = Digest.parse(entry.digest)
        descriptor = Descriptor(entry.media_type, digest, entry.size)
        key = (entry.digest, -1, 0)  # -1: not a layer node of the spec on screen
        self._contents_key = key
        self._contents_view, self._contents_shown = "layer", key
        view = self.query_one(ContentsView)
        view.set_summary("")
        view.set_heading(
            Text.assemble(
                ("cache blob ", "bold"),
                (f"sha256:{short_digest(digest)}", "cyan"),
                f"  {entry.summary}  ",
                ("(from the Cache pane; select a layer to go back)", "dim"),
            )
        )
        view.table.clear_entries()
        store = self.store
        self.tasks.start(
            "contents",
            lambda token: (key, "", entries_from_blob(store, descriptor, "", token)),
        )
        self.action_focus_pane("contents")

    def on_cache_table_verify(self, message: CacheTable.Verify) -> None:
        store = self.store
        self.query_one(CacheView).set_heading(Text("verifying every blob…", style="yellow"))
        self.log_line("info", f"cache: verifying {store.root}")
        self.tasks.start("cache-verify", lambda _token: verify(store))

    def _done_cache_verify(self, report: Any) -> None:
        for problem in report.problems:
            self.log_line("error", f"cache: {problem}")
        status = "ok" if report.ok else f"{len(report.problems)} problem(s), see the log"
        text = f"verified {report.blobs} blobs: {status}"
        self._cache_said(text, report.ok)
        self.query_one(CacheTable).mark_corrupt(dict(report.corrupt))
        self.refresh_cache()
        if report.corrupt:
            self.on_cache_table_remove_corrupt(CacheTable.RemoveCorrupt())

    def on_cache_table_remove_corrupt(self, message: CacheTable.RemoveCorrupt) -> None:
        corrupt = dict(self.query_one(CacheTable).corrupt)
        if not corrupt:
            return
        if self.building:
            self.notify("wait for the build to finish", title="cache", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            store = self.store
            self.log_line("info", f"cache: removing {len(corrupt)} corrupt blob(s)")
            self.tasks.start("cache-remove", lambda _token: remove_blobs(store, corrupt))

        listed = [f"sha256:{short_digest(d)}" for d in sorted(corrupt)]
        self.push_screen(
            ConfirmScreen(
                f"Remove {len(corrupt)} corrupt blob(s)?",
                "\n".join(_first(listed, 8))
                + "\nTheir bytes do not match their digests. The layer records naming them go "
                "too: the next build that needs one writes it again.",
                yes="Remove",
            ),
            answered,
        )

    def _cache_said(self, text: str, ok: bool = True) -> None:
        """A cache task's outcome, in the log and as a notification."""
        self.log_line("info" if ok else "error", f"cache: {text}")
        self.notify(text, title="cache", severity="information" if ok else "error")

    def _done_cache_remove(self, report: Any) -> None:
        text = (
            f"removed {report.blobs} corrupt blob(s) ({human_bytes(report.bytes)}) and "
            f"{report.records} layer record(s) naming them"
        )
        self._cache_said(text)
        self.refresh_cache()

    def on_cache_table_collect(self, message: CacheTable.Collect) -> None:
        if self.building:
            self.notify("wait for the build to finish", title="cache", severity="warning")
            return

        def asked(options: GcOptions | None) -> None:
            if options is None:
                return
            self._gc_options = options
            store = self.store
            self.tasks.start(
                "cache-gc-plan",
                lambda _token: plan_garbage(store, options.keep_days, options.max_bytes),
            )

        given = self._gc_options
        self.push_screen(
            GcOptionsScreen(
                f"{given.keep_days:g}",
                "" if given.max_bytes is None else str(given.max_bytes),
            ),
            asked,
        )

    def _done_cache_gc_plan(self, plan: GcPlan) -> None:
        """Show what gc would remove; remove it only on a yes."""
        freed = human_bytes(plan.freed_bytes)
        summary = (
            f"gc would remove {len(plan.blobs)} blob(s) ({freed}) and "
            f"{len(plan.records)} layer record(s), keeping {plan.kept_blobs} blob(s) "
            f"({human_bytes(plan.kept_bytes)})"
        )
        self.log_line("info", f"cache: {summary}")
        if not plan.blobs and not plan.records:
            self.notify("nothing to remove: every blob is in use", title="cache")
            return
        by_digest = {e.digest: e for e in self.query_one(CacheTable).entries}
        listed = []
        for digest, size in sorted(plan.blobs, key=lambda b: (-b[1], b[0])):
            entry = by_digest.get(digest)
            what = (entry.summary or entry.kind) if entry is not None else ""
            listed.append(f"{short_digest(digest)}  {human_bytes(size):>10}  {what}"[:58])

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            if self.building:
                # The plan predates this build, which may need what it would remove.
                self.notify("a build started: collect again after it", title="cache")
                return
            store = self.store
            self.log_line("info", f"cache: collecting garbage in {store.root}")
            self.tasks.start("cache-gc", lambda _token: apply_garbage(store, plan))

        self.push_screen(
            ConfirmScreen(
                f"Remove {len(plan.blobs)} blob(s), {freed}?",
                "\n".join(_first(listed, 8))
                + f"\nand {len(plan.records)} layer record(s); {plan.kept_blobs} blob(s) "
                f"({human_bytes(plan.kept_bytes)}) stay. Builds within {plan.keep_days:g} "
                "days and the newest of every spec are kept; what goes is rebuilt when needed.",
                yes="Remove",
            ),
            answered,
        )

    def _done_cache_gc(self, report: Any) -> None:
        text = (
            f"removed {report.removed_blobs} blobs ({human_bytes(report.freed_bytes)}) and "
            f"{report.removed_records} records, kept {report.kept_blobs} blobs"
        )
        self._cache_said(text)
        self.refresh_cache()

    def _done_push(self, result: Any) -> None:
        refs = ", ".join(result.references())
        self.log_line("info", f"pushed {refs}")
        self.notify(f"pushed {refs}", title="push")
        self._update_titles()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "cache-tab" and self._cache_dirty:
            self.refresh_cache()

    # -- watch mode ------------------------------------------------------------------------

    def watch_watching(self, on: bool) -> None:
        if on:
            self._targets = None
            self._retarget_watch()
            self.log_line("watch", "watch: on")
        else:
            self.workers.cancel_group(self, "watch")
            self._targets = None
            self.log_line("watch", "watch: off")
        self._update_titles()

    def _retarget_watch(self) -> None:
        if not self.watching:
            return
        # The store's root (the cache's versioned directory, where every write goes), not its
        # base: that may be the project itself (`--cache-dir .`).
        targets = watch_targets(self.spec_path, self.spec, self.store.root)
        if targets == self._targets:
            return
        self._targets = targets
        self.run_worker(
            self._watch_loop(targets), group="watch", exclusive=True, exit_on_error=False
        )

    async def _watch_loop(self, targets: WatchTargets) -> None:
        def changed(paths: tuple[Path, ...]) -> None:
            self.post_message(SourcesChanged(paths))

        await watch(targets, changed, self.debounce_ms, STEP_MS)

    # -- actions ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "push":
            # Shown only when the spec names an image (a registry and repository).
            return (self.spec is not None and self.spec.image is not None) or None
        if action == "cancel_build":
            return self.building or self.tasks.busy("push") or None
        return True

    def action_build(self) -> None:
        self.start_build("build now (key)")

    def action_cancel_build(self) -> None:
        if self.building:
            self.runner.cancel()
            self.log_line("warning", "cancelling the build")
        elif self.tasks.busy("push"):
            self.tasks.cancel("push")
            self.log_line("warning", "cancelling the push")

    def action_toggle_watch(self) -> None:
        self.watching = not self.watching
        self.notify(f"watch {'on' if self.watching else 'off'}", timeout=2)

    def action_next_platform(self) -> None:
        """Of a multi-platform spec, build and show the next platform's image."""
        if self.spec is None or not self.spec.is_index:
            self.notify("the spec builds one platform", severity="warning")
            return
        platforms = self.spec.platforms
        current = self.runner.platform if self.runner.platform in platforms else platforms[0]
        chosen = platforms[(platforms.index(current) + 1) % len(platforms)]
        self.runner.platform = chosen
        self.start_build(f"platform {chosen}")

    def action_push(self) -> None:
        if self.spec is None or self.spec.image is None:
            self.notify("the spec names no image to push to", severity="warning")
            return
        if self.spec.is_index:
            # The workbench holds one platform's image; a tag must name the whole index.
            self.notify(
                "a multi-platform spec is pushed with `vinci push` (every platform, then the "
                "index)",
                severity="warning",
            )
            return
        if self.result is None or self.building or self.tasks.busy("push"):
            self.notify("wait for the build (or push) to finish", severity="warning")
            return
        reason = self.stale_reason()
        if reason:
            digest = short_digest(self.result.manifest.digest)

            def answered(yes: bool | None) -> None:
                if yes:
                    self._push()

            self.push_screen(
                ConfirmScreen(
                    f"{reason.capitalize()}. Push the last good image anyway?",
                    f"It is sha256:{digest}, built before the spec and its sources as they "
                    "are now.",
                    yes="Push",
                ),
                answered,
            )
            return
        self._push()

    def _push(self) -> None:
        if self.spec is None or self.spec.image is None or self.result is None:
            return
        # Imported here: the registry client (httpx) is not needed to author and build.
        from engine.registry.push import push_image

        result, image = self.result, self.spec.image
        target, tags = image.with_tag(""), [image.tag or "latest"]
        indexes = {d.digest: r.index for r in result.layers for d in r.record.descriptors}
        # Pushing progress is shown on the layer rows, as part of the build on screen.
        sink = EventBridge(self.post_message, self.runner.generation)
        store = self.store
        self.log_line("info", f"pushing to {target}:{tags[0]}")
        self.tasks.start(
            "push",
            lambda token: push_image(
                store,
                result.manifest,
                target,
                tags,
                sink=sink,
                cancel=token,
                layer_indexes=indexes,
            ),
        )

    def action_copy_digest(self) -> None:
        digest = None
        if self.result is not None and self.selected_layer is not None:
            layer = next((r for r in self.result.layers if r.index == self.selected_layer), None)
            if layer is not None and layer.record.descriptors:
                digest = str(layer.record.descriptors[0].digest)
        if digest is None:
            self.action_copy_manifest()
            return
        self.copy_to_clipboard(digest)
        self.notify(f"copied layer {self.selected_layer} digest {digest[:19]}…", timeout=3)

    def action_copy_manifest(self) -> None:
        if self.result is None:
            self.notify("nothing built yet", severity="warning")
            return
        digest = str(self.result.manifest.digest)
        self.copy_to_clipboard(digest)
        self.notify(f"copied manifest digest {digest[:19]}…", timeout=3)

    def action_focus_pane(self, name: str) -> None:
        targets: dict[str, type[Widget]] = {
            "spec": SpecTree,
            "layers": LayersTable,
            "details": DetailsTable,
            "contents": FileTable,
            "cache": CacheTable,
            "log": BuildLog,
            "editor": SpecEditor,
            "changes": ChangesLog,
        }
        if name in TABS:
            self.query_one(TabbedContent).active = f"{name}-tab"
            if name == "cache" and self._cache_dirty:
                self.refresh_cache()
        widget = self.query_one(targets[name])
        self.call_after_refresh(widget.focus)

    def focused_pane(self) -> str:
        node: Any = self.focused
        while node is not None:
            if isinstance(node, TabbedContent):
                # The tab bar belongs to the pane it shows.
                return str(node.active).removesuffix("-tab")
            pane = {
                "spec": "spec",
                "layers": "layers",
                "details": "details",
                "contents": "contents",
                "cache": "cache",
                "logview": "log",
                "editorview": "editor",
                "changesview": "changes",
            }.get(node.id or "")
            if pane is not None:
                return pane
            node = node.parent
        return "layers"

    def on_filter_bar_filter_changed(self, event: FilterBar.FilterChanged) -> None:
        """The filters of the panes that are not views of their own (contents, cache and log
        handle theirs)."""
        bar = event.bar.id
        if bar == "spec-filter":
            self.query_one(SpecTree).set_needle(event.text, self.spec)
        elif bar == "layers-filter":
            self.query_one(LayersTable).set_needle(event.text)
        elif bar == "details-filter":
            self.query_one(DetailsTable).set_needle(event.text)

    def action_filter(self) -> None:
        pane = self.focused_pane()
        if pane in ("spec", "layers", "details"):
            self.query_one(f"#{pane}-filter", FilterBar).open()
            return
        if pane == "contents":
            self.query_one(ContentsView).open_filter()
            return
        if pane == "cache":
            self.query_one(CacheView).open_filter()
            return
        self.query_one(TabbedContent).active = "log-tab"
        self.call_after_refresh(self.query_one(LogView).open_filter)

    def action_help(self) -> None:
        pane = self.focused_pane()
        focused = self.focused
        local: list[tuple[str, str, str]] = []
        everywhere: list[tuple[str, str, str]] = []
        seen: set[tuple[str, str]] = set()
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            # Only our bindings (those with ids, which a keys file can rebind); Textual's
            # own cursor keys would bury them.
            if not binding.id or not binding.description or (binding.action, key) in seen:
                continue
            seen.add((binding.action, key))
            row = (self.get_key_display(binding), binding.description, binding.id or "")
            if active.node is self:
                everywhere.append(row)
            elif active.node is focused:
                local.append(row)
        sections = [(f"Keys in the {pane} pane", _merge(local)), ("Everywhere", _merge(everywhere))]
        self.push_screen(
            HelpScreen(
                f"{pane.title()} pane",
                PANE_HELP.get(pane, ""),
                sections,
                footer=(
                    f"Rebind any key by its id in {self.keymap_path}, e.g. "
                    '[keys] build-now = "ctrl+b". ctrl+p lists every command.'
                ),
            )
        )

    async def action_quit(self) -> None:
        if isinstance(self.screen, ConfirmScreen):
            return  # already asking
        unsaved = self.query_one(SpecEditor).modified
        if not self.building and not unsaved:
            await self.shutdown()
            self.exit(0)
            return

        async def answered(yes: bool | None) -> None:
            if yes:
                await self.shutdown()
                self.exit(0)

        question = "A build is running. Cancel it and quit?"
        if unsaved:
            question = "The Edit pane has unsaved changes. Quit without saving them?"
        self.push_screen(ConfirmScreen(question, yes="Quit"), answered)

    async def shutdown(self, timeout: float = 60.0) -> None:
        """Cancel every worker thread and wait for them (without blocking the loop)."""
        self.runner.cancel()
        self.tasks.cancel_all()
        self.workers.cancel_group(self, "watch")
        deadline = asyncio.get_running_loop().time() + timeout
        while self.worker_threads() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)

    def worker_threads(self) -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]

    async def on_unmount(self) -> None:
        await self.shutdown()

    def action_maximize_pane(self) -> None:
        """Maximize the focused pane (the whole screen for it), or restore the layout."""
        screen = self.screen
        if screen.maximized is not None:
            screen.minimize()
        elif self.focused is not None:
            screen.maximize(self.focused)

    def action_resize_spec(self, step: int) -> None:
        """Make the Spec pane `step` cells wider (or narrower), within the window."""
        pane = self.query_one("#spec-pane")
        total = self.size.width
        width = max(16, min(total - 40, pane.outer_size.width + step))
        pane.styles.width = width
        pane.styles.min_width = width
        pane.styles.max_width = width

    def deliver_screenshot(
        self,
        filename: str | None = None,
        path: str | None = None,
        time_format: str | None = None,
    ) -> str | None:
        # Textual's default directory is ~/Downloads, which many machines (servers,
        # containers) lack: the current directory always exists and is where the user is.
        return super().deliver_screenshot(filename, path or os.getcwd(), time_format)

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        self.deliver_screenshot(filename, path)

    # -- authoring ---------------------------------------------------------------------------

    def _open_in_editor(self) -> None:
        """Show the spec file in the Editor pane (its unsaved edits, if any, are kept)."""
        view = self.query_one(EditorView)
        view.editor.open_file(
            Path(os.path.abspath(self.spec_path)), self.display_path(self.spec_path)
        )
        view.update_heading(self.display_path)

    def on_editor_view_changed(self, message: EditorView.Changed) -> None:
        self.query_one(EditorView).update_heading(self.display_path)

    def on_spec_editor_saved(self, message: SpecEditor.Saved) -> None:
        self.log_line("info", f"saved {self.display_path(self.spec_path)} in the editor")
        self.query_one(EditorView).update_heading(self.display_path)
        self.start_build("saved in the editor")

    def _location(self) -> tuple[int, int]:
        """The line and column the focused pane points at in the spec (1-based)."""
        pane = self.focused_pane()
        if pane == "editor":
            row, col = self.query_one(SpecEditor).cursor_location
            return row + 1, col + 1
        pos = None
        if pane == "spec":
            node = self.query_one(SpecTree).cursor_node
            if node is not None and node.data is not None:
                pos = node.data.pos
        elif (
            self.spec is not None
            and self.selected_layer is not None
            and self.selected_layer < len(self.spec.layers)
        ):
            pos = self.spec.layers[self.selected_layer].pos
        if pos is None and self.problems:
            pos = self.problems[0].position
        return (pos.line, pos.column) if pos is not None else (1, 1)

    def action_open_editor(self) -> None:
        """Open $VISUAL or $EDITOR at the focused node's (or problem's) line and column; the
        app is suspended meanwhile, and rebuilds on return."""
        command = os.environ.get("VISUAL") or os.environ.get("EDITOR")
        if not command:
            self.notify(
                "set $VISUAL or $EDITOR (or use the Edit pane, 7)", title="edit", severity="warning"
            )
            return
        path = str(Path(os.path.abspath(self.spec_path)))
        line, column = self._location()
        argv = [*shlex.split(command), *editor_arguments(command, path, line, column)]
        self.log_line("info", f"editing {self.display_path(self.spec_path)}:{line}:{column}")
        try:
            with self.suspend():
                subprocess.run(argv, check=False)
        except SuspendNotSupported:
            # No terminal to hand over (a test, a web driver): run it without one.
            subprocess.run(argv, check=False, stdin=subprocess.DEVNULL, capture_output=True)
        except OSError as e:
            self.notify(describe_os_error(e), title="edit", severity="error")
            return
        self._open_in_editor()
        self.start_build("back from the editor")

    def action_open_spec(self) -> None:
        def answered(path: str | None) -> None:
            if path:
                self.open_spec(path)

        self.push_screen(
            AskScreen("Open which spec?", "a file, or a directory with vinci.yaml"), answered
        )

    def open_spec(self, given: str) -> None:
        try:
            path = Path(find_spec(given))
        except VinciError as e:
            self.notify(str(e), title="open spec", severity="error")
            return
        self.spec_path = path
        self.spec, self.problems, self.result = None, (), None
        self._plans = {}
        self.log_line("info", f"opened {self.display_path(path)}")
        self.query_one(SpecTree).show_spec(None)
        self._open_in_editor()
        self._targets = None
        self._retarget_watch()
        self.start_build(f"opened {self.display_path(path)}")

    # -- palette ---------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, help_text, action in palette_commands(self.spec is not None and self.spec.image):
            yield SystemCommand(title, help_text, functools.partial(self.run_action, action))

    def action_contents_sort(self) -> None:
        self.query_one(FileTable).action_sort()

    def action_contents_view(self, name: str) -> None:
        self.set_contents_view(name)
        self.action_focus_pane("contents")

    def action_log_only_matching(self) -> None:
        self.query_one(BuildLog).action_toggle_only()

    def action_cache_refresh(self) -> None:
        self.refresh_cache()

    def action_cache_verify(self) -> None:
        self.post_message(CacheTable.Verify())

    def action_cache_collect(self) -> None:
        self.post_message(CacheTable.Collect())

    # -- titles ----------------------------------------------------------------------------

    def shorten(self, text: str) -> str:
        """`text` with absolute paths under the current directory made relative ("./site")."""
        here = os.getcwd()
        return text.replace(here + os.sep, "./") if here != os.sep else text

    def display_path(self, path: Path) -> str:
        try:
            rel = os.path.relpath(path)
        except ValueError:
            return str(path)
        if not rel.startswith(".."):
            return rel
        home = str(Path.home())
        text = str(path)
        return "~" + text[len(home) :] if text.startswith(home + os.sep) else text

    def _update_titles(self) -> None:
        title = self.model.title()
        if self.building and self._started != self.runner.generation:
            title = "starting…"  # loading the spec; the engine has not begun
        pane = self.query_one("#layers-pane")
        pane.border_title = f"2 Layers · {title}"
        # The digest beside "built" is always this build's (from its BuildFinished event, a
        # moment before the result arrives); any other is named for what it is.
        manifest, which = None, ""
        if self.model.status == "built" and self.model.manifest is not None:
            manifest = self.model.manifest
        elif self.result is not None:
            manifest = self.result.manifest.digest
            which = "last good " if self.stale_reason() else "last built "
        pane.border_subtitle = (
            f"{which}manifest sha256:{short_digest(manifest)}" if manifest else ""
        )
        status = Text()
        status.append(self.display_path(self.spec_path), style="bold")
        status.append("  ·  ")
        if self.problems and not os.path.exists(self.spec_path):
            # Said plainly: an editor's rename, a checkout, a mistaken rm.
            status.append(
                f"✗ {self.display_path(self.spec_path)} was deleted or renamed: restore it "
                "(ctrl+s in the Edit pane writes it back) or open another spec",
                style="bold red",
            )
        elif self.problems:
            status.append(
                f"✗ spec: {len(self.problems)} problem(s), last good build shown", style="bold red"
            )
        elif self.model.status == "failed":
            # The whole message is in the Layers title, Details and the log; here it must
            # leave room for the digest beside it.
            text = f"✗ {title}"
            status.append(text if len(text) <= 56 else text[:55] + "…", style="bold red")
        else:
            status.append(title, style="bold")
        if manifest is not None:
            status.append("  ·  ")
            status.append(
                f"{which}sha256:{short_digest(manifest)}", style="dim" if which else "bold cyan"
            )
        if self.pushed and self.model.status == "built":
            status.append("  ·  ")
            status.append(self.pushed_short, style="green")
        status.append("  ·  ")
        status.append(
            f"watch {'on' if self.watching else 'off'}", style="green" if self.watching else "dim"
        )
        self.query_one("#status", Static).update(status)
        self.sub_title = title


def editor_arguments(command: str, path: str, line: int, column: int) -> list[str]:
    """How `command` is told to open `path` at `line`:`column`, by the conventions of the
    editors people set $EDITOR to; others get the `+LINE FILE` most of them accept."""
    name = os.path.basename(shlex.split(command)[0]) if command.strip() else ""
    if name in ("vim", "nvim", "vi", "gvim", "mvim"):
        return [f"+call cursor({line},{column})", path]
    if name in ("nano", "pico"):
        return [f"+{line},{column}", path]
    if name in ("emacs", "emacsclient", "micro", "kak"):
        return [f"+{line}:{column}", path]
    if name in ("code", "codium", "code-insiders"):
        return ["--goto", f"{path}:{line}:{column}"]
    if name in ("subl", "zed", "hx", "helix"):
        return [f"{path}:{line}:{column}"]
    return [f"+{line}", path]


def follow_node(before: Spec | None, after: Spec, index: int | None) -> int | None:
    """Where layer node `index` of `before` is in `after`: the same index if it still holds
    the same node (same kind and key fields), else the first index that does, else the
    nearest index that exists. A layer inserted above the selection keeps it on its node."""
    if index is None or not after.layers:
        return None
    if before is None or index >= len(before.layers):
        return min(index, len(after.layers) - 1)
    wanted = layer_summary(before.layers[index])
    if index < len(after.layers) and layer_summary(after.layers[index]) == wanted:
        return index
    for i, node in enumerate(after.layers):
        if layer_summary(node) == wanted:
            return i
    return min(index, len(after.layers) - 1)


def _first(lines: list[str], n: int) -> list[str]:
    """At most `n` lines, the rest counted."""
    return lines if len(lines) <= n else [*lines[: n - 1], f"… and {len(lines) - n + 1} more"]


def _merge(rows: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """One row per action: keys bound to the same binding id shown together."""
    out: dict[tuple[str, str], list[str]] = {}
    for keys, description, binding_id in rows:
        out.setdefault((description, binding_id), []).append(keys)
    return [(" ".join(dict.fromkeys(k)), d, i) for (d, i), k in out.items()]


# -- entry point ---------------------------------------------------------------------------------


def spec_to_open(given: str | None) -> Path:
    """The spec to open: the one given (a file or its directory), else ./vinci.yaml, else the
    hello example."""
    if given:
        return Path(find_spec(given))
    found = locate_spec(None)
    return Path(found) if found is not None else EXAMPLE


def run_workbench(spec: str | None, options: BuildOptions, *, watch: bool = True) -> int:
    """`vinci tui`: the workbench on `spec`, building as `options` say."""
    return Workbench(spec_to_open(spec), options, watch=watch).run() or 0
