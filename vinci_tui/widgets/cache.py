"""The Cache pane: every blob in the cache with its size, media type, last use and users.

Listing, verifying and collecting garbage run in worker threads (the app starts them); this
widget only shows their results: the blobs verify found corrupt are marked in red until they
are removed (the app asks first), and gc shows what it would remove before it removes it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from engine.cache.maintenance import CacheEntry
from vinci_tui.clock import Clock, format_age
from vinci_tui.fmt import human_bytes, short_digest
from vinci_tui.widgets.filter import FilterBar


def short_media_type(media_type: str) -> str:
    """'application/vnd.oci.image.layer.v1.tar+gzip' -> 'oci layer+gzip'."""
    for prefix, name in (
        ("application/vnd.oci.image.", "oci "),
        ("application/vnd.docker.image.rootfs.", "docker "),
        ("application/vnd.docker.distribution.", "docker "),
        ("application/vnd.docker.container.image.", "docker "),
    ):
        if media_type.startswith(prefix):
            rest = media_type.removeprefix(prefix)
            rest = rest.replace(".v1", "").replace(".v2", "").replace("+json", "")
            return name + rest.replace(".tar", "")
    return media_type or "-"


class CacheTable(DataTable[Text]):
    HELP = (
        "Every blob in the cache: short digest, kind, size, media type, last use, and which "
        "specs (and which layers of this spec) use it. v verifies every blob (as `vinci cache "
        "verify`): a corrupt one is marked ✗ in red, and removing it (asked at once, or d "
        "later) makes the next build that needs it write it again. x collects garbage as "
        "`vinci cache gc` does: it asks for --keep-days and --max-size, then shows how many "
        "blobs and bytes would go, and which, before removing anything. Enter on a layer blob "
        "shows its files in Contents."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "verify", "Verify", id="cache.verify"),
        Binding("x", "collect", "Garbage-collect…", id="cache.gc"),
        Binding("d", "remove_corrupt", "Remove corrupt…", id="cache.remove-corrupt"),
        Binding("enter", "open_layer", "Files", id="cache.open-layer"),
        Binding("j", "cursor_down", "Down", show=False, id="cache.down"),
        Binding("k", "cursor_up", "Up", show=False, id="cache.up"),
        Binding("g", "scroll_top", "Top", show=False, id="cache.top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="cache.bottom"),
    ]

    class Verify(Message):
        pass

    class Collect(Message):
        pass

    class RemoveCorrupt(Message):
        """Remove the blobs verify found corrupt (the app asks first)."""

    class OpenLayer(Message):
        """Show the files of the layer blob `entry` in the Contents pane."""

        def __init__(self, entry: CacheEntry) -> None:
            super().__init__()
            self.entry = entry

    def __init__(self, clock: Clock, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", cell_padding=0, zebra_stripes=False)
        self.clock = clock
        self.entries: list[CacheEntry] = []
        self.needle = ""
        self.spec_path = ""
        self.layer_users: Mapping[str, Sequence[str]] = {}
        self.corrupt: dict[str, str] = {}  # digest -> what verify found wrong with it

    def on_mount(self) -> None:
        self._columns()

    def on_resize(self, event: events.Resize) -> None:
        if self._columns():
            self.render_rows()

    def _columns(self) -> bool:
        width = self.scrollable_content_region.width or self.size.width or 80
        wide = width >= 100
        fixed = [("digest", 13), ("kind", 9), ("size", 10), ("used", 13)]
        if wide:
            fixed.insert(3, ("media", 18))
        users = max(10, width - sum(w for _, w in fixed) - 1)
        wanted = [*fixed, ("users", users)]
        current = [(str(k.value), c.width) for k, c in self.columns.items()]
        if current == wanted:
            return False
        self.clear(columns=True)
        headers = {"used": "last used", "users": "used by", "media": "media type"}
        for key, w in wanted:
            self.add_column(headers.get(key, key), key=key, width=w)
        return True

    def show_entries(
        self,
        entries: Sequence[CacheEntry],
        spec_path: str,
        layer_users: Mapping[str, Sequence[str]],
    ) -> None:
        self.entries = list(entries)
        present = {e.digest for e in self.entries}
        # A corrupt blob stays marked until it is gone (removed, or collected).
        if any(d not in present for d in self.corrupt):
            self.corrupt = {d: p for d, p in self.corrupt.items() if d in present}
            self.refresh_bindings()
        self.spec_path = spec_path
        self.layer_users = layer_users
        self.render_rows()

    def mark_corrupt(self, corrupt: Mapping[str, str]) -> None:
        """The blobs a verify found corrupt (every earlier mark is replaced)."""
        self.corrupt = dict(corrupt)
        self.render_rows()
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # d is offered (in the footer too) only while there is something corrupt to remove.
        if action == "remove_corrupt":
            return bool(self.corrupt)
        return super().check_action(action, parameters)

    def _users(self, entry: CacheEntry) -> str:
        names = []
        layers = self.layer_users.get(entry.digest)
        if layers:
            names.append("this spec: " + ", ".join(layers))
        elif self.spec_path in entry.used_by:
            names.append("this spec")
        for spec in entry.used_by:
            if spec != self.spec_path:
                names.append(_display_path(spec))
        return "; ".join(names) or "-"

    def render_rows(self) -> None:
        keep = self.current_digest()
        self.clear()
        needle = self.needle.lower()
        columns = [str(k.value) for k in self.columns]
        # Corrupt blobs first: they are what the user has to act on.
        bad_first = sorted(
            self.entries, key=lambda e: (e.digest not in self.corrupt, -e.size, e.digest)
        )
        for entry in bad_first:
            users = self._users(entry)
            media = short_media_type(entry.media_type)
            bad = entry.digest in self.corrupt
            # The mark takes two of the digest's twelve digits: no column moves.
            digest = f"✗ {short_digest(entry.digest, 10)}" if bad else short_digest(entry.digest)
            haystack = f"{entry.digest} {entry.kind} {media} {users} {entry.summary}".lower()
            if bad:
                haystack += " corrupt"
            if needle and needle not in haystack:
                continue
            cells = {
                "digest": Text(digest, style="bold red" if bad else "dim"),
                "kind": Text(entry.kind, style="bold red" if bad else ""),
                "size": Text(f"{human_bytes(entry.size):>9} "),
                "media": Text(media, overflow="ellipsis", no_wrap=True),
                "used": Text(format_age(self.clock.age(entry.last_used))),
                "users": Text(users, overflow="ellipsis", no_wrap=True),
            }
            row = [cells[c] for c in columns]
            if needle:
                for cell in row:
                    cell.highlight_words([needle], style="reverse", case_sensitive=False)
            self.add_row(*row, key=entry.digest)
        if keep is not None and keep in self.rows:
            self.move_cursor(row=self.get_row_index(keep))

    def current_digest(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def action_verify(self) -> None:
        self.post_message(self.Verify())

    def action_collect(self) -> None:
        self.post_message(self.Collect())

    def action_remove_corrupt(self) -> None:
        self.post_message(self.RemoveCorrupt())

    def action_open_layer(self) -> None:
        digest = self.current_digest()
        entry = next((e for e in self.entries if e.digest == digest), None)
        if entry is None or entry.kind != "layer":
            self.app.bell()  # a config, manifest or other blob has no files to list
            return
        self.post_message(self.OpenLayer(entry))


def _display_path(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("../..") else str(Path(path))


def totals(entries: Sequence[CacheEntry]) -> str:
    layers = [e for e in entries if e.kind == "layer"]
    return (
        f"{len(entries)} blobs, {human_bytes(sum(e.size for e in entries))} "
        f"({len(layers)} layers, {human_bytes(sum(e.size for e in layers))})"
    )


class CacheView(Vertical):
    def __init__(self, clock: Clock, *, blink: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self._clock = clock
        self._blink = blink

    def compose(self) -> ComposeResult:
        yield Static("", id="cache-heading", classes="pane-heading")
        yield FilterBar("filter blobs…", id="cache-filter", blink=self._blink)
        yield CacheTable(self._clock, id="cache-table")

    @property
    def table(self) -> CacheTable:
        return self.query_one(CacheTable)

    def set_heading(self, text: Text | str) -> None:
        self.query_one("#cache-heading", Static).update(text)

    def open_filter(self) -> None:
        self.query_one(FilterBar).open()

    def on_filter_bar_filter_changed(self, event: FilterBar.FilterChanged) -> None:
        self.table.needle = event.text
        self.table.render_rows()
