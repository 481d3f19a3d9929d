"""Compares two layers file by file, naming the exact cause of each difference.

Each layer is streamed once through engine.tar.read (headers parsed, file data hashed, nothing kept
but one small record per entry) and the two entry lists are matched by path. A path present
twice in one layer counts as its last occurrence, as an unpacker leaves it. When every file
matches but the diff_ids differ, the cause is in the tar framing: entry order, or what follows
the end-of-archive marker; those are reported as notes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from engine.compare.model import (
    CONTENT,
    DEVICE,
    EXTENDED,
    HEADER_ENCODING,
    HEADER_FORMAT,
    LINK_TARGET,
    MODE,
    MTIME,
    OWNER,
    OWNER_NAMES,
    TYPE,
    Cause,
    FileChange,
)
from engine.tar.read import TarEntry, TarSummary


def _mtime(value: str) -> str:
    try:
        seconds = float(value)
        when = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        return value
    return f"{value} ({when})"


def _size(n: int) -> str:
    return f"{n} byte" if n == 1 else f"{n} bytes"


def describe(e: TarEntry) -> str:
    """`file 0644 0:0 14 bytes`, `symlink -> busybox`, `dir 0755 0:0`."""
    text = f"{e.type} {e.mode:04o} {e.uid}:{e.gid}"
    if e.type == "file":
        text += f" {_size(e.size)}"
    if e.linkname:
        text += f" -> {e.linkname}"
    return text


def entry_causes(a: TarEntry, b: TarEntry) -> tuple[Cause, ...]:
    """Every attribute that differs between two entries for the same path, in a fixed order;
    empty when the entries are byte-identical."""
    causes: list[Cause] = []
    if a.type != b.type:
        causes.append(Cause(TYPE, a.type, b.type))
    if (a.digest, a.size) != (b.digest, b.size) and a.type == b.type == "file":
        causes.append(
            Cause(
                CONTENT,
                f"sha256:{a.digest[:12]} ({_size(a.size)})",
                f"sha256:{b.digest[:12]} ({_size(b.size)})",
            )
        )
    if a.mode != b.mode:
        causes.append(Cause(MODE, f"{a.mode:04o}", f"{b.mode:04o}"))
    if (a.uid, a.gid) != (b.uid, b.gid):
        causes.append(Cause(OWNER, f"{a.uid}:{a.gid}", f"{b.uid}:{b.gid}"))
    if (a.uname, a.gname) != (b.uname, b.gname):
        causes.append(Cause(OWNER_NAMES, f"{a.uname!r}:{a.gname!r}", f"{b.uname!r}:{b.gname!r}"))
    if a.mtime != b.mtime:
        causes.append(Cause(MTIME, _mtime(a.mtime), _mtime(b.mtime)))
    if a.linkname != b.linkname:
        causes.append(Cause(LINK_TARGET, repr(a.linkname), repr(b.linkname)))
    if (a.devmajor, a.devminor) != (b.devmajor, b.devminor):
        causes.append(Cause(DEVICE, f"{a.devmajor},{a.devminor}", f"{b.devmajor},{b.devminor}"))
    if a.extra != b.extra:
        causes.append(Cause(EXTENDED, _records(a.extra), _records(b.extra)))
    if (a.format, a.pax_keys) != (b.format, b.pax_keys):
        causes.append(Cause(HEADER_FORMAT, _format(a), _format(b)))
    if not causes and a.header != b.header:
        # Every field reads the same, yet the header bytes differ: number formatting (field
        # width, NUL vs space terminators), checksum layout, unused fields, padding.
        causes.append(Cause(HEADER_ENCODING, f"header {a.header[:12]}", f"header {b.header[:12]}"))
    return tuple(causes)


def _records(extra: tuple[tuple[str, str], ...]) -> str:
    return "{" + ", ".join(f"{k}={v!r}" for k, v in extra) + "}" if extra else "none"


def _format(e: TarEntry) -> str:
    if e.pax_keys:
        return f"{e.format} ({', '.join(e.pax_keys)})"
    return e.format


def _last_by_path(entries: Sequence[TarEntry]) -> dict[str, TarEntry]:
    out: dict[str, TarEntry] = {}
    for e in entries:
        out[e.path] = e
    return out


def compare_entries(
    a: Sequence[TarEntry],
    b: Sequence[TarEntry],
    sa: TarSummary | None = None,
    sb: TarSummary | None = None,
) -> tuple[tuple[FileChange, ...], tuple[str, ...]]:
    """File changes between two layers' entries (sorted by path), and notes on tar-level
    differences that no file explains."""
    by_a, by_b = _last_by_path(a), _last_by_path(b)
    changes: list[FileChange] = []
    for path in sorted(by_a.keys() | by_b.keys()):
        ea, eb = by_a.get(path), by_b.get(path)
        shown = "/" + path
        if ea is None:
            assert eb is not None
            changes.append(FileChange(shown, "added", (), describe(eb)))
        elif eb is None:
            changes.append(FileChange(shown, "removed", (), describe(ea)))
        else:
            causes = entry_causes(ea, eb)
            if causes:
                changes.append(FileChange(shown, "changed", causes, describe(eb)))
    notes: list[str] = []
    dup_a, dup_b = len(a) - len(by_a), len(b) - len(by_b)
    if dup_a != dup_b:
        notes.append(f"entries written more than once: {dup_a} -> {dup_b}")
    order_a = [e.path for e in a]
    order_b = [e.path for e in b]
    if not changes and sorted(order_a) == sorted(order_b) and order_a != order_b:
        first = next(i for i, (x, y) in enumerate(zip(order_a, order_b, strict=True)) if x != y)
        notes.append(
            f"entry order: entry {first} is /{order_a[first]} in A, /{order_b[first]} in B"
        )
    if sa is not None and sb is not None:
        trail_a = sa.size - sa.end_offset if sa.end_offset >= 0 else 0
        trail_b = sb.size - sb.end_offset if sb.end_offset >= 0 else 0
        if (sa.end_offset < 0) != (sb.end_offset < 0):
            notes.append(
                "end-of-archive marker: "
                f"{'missing' if sa.end_offset < 0 else 'present'} -> "
                f"{'missing' if sb.end_offset < 0 else 'present'}"
            )
        elif trail_a != trail_b:
            notes.append(
                f"end of archive: {_size(trail_a)} of zero blocks and record padding -> "
                f"{_size(trail_b)}"
            )
        if sa.global_pax != sb.global_pax:
            notes.append(
                f"global PAX header: {_records(sa.global_pax)} -> {_records(sb.global_pax)}"
            )
    return tuple(changes), tuple(notes)
