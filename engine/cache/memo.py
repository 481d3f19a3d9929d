"""The stat memo: remembers each source file's content digest by its stat data.

Like git's index: (size, mtime_ns, inode, ctime_ns) unchanged means content unchanged, so an
unchanged source is never read again. A file modified within the timestamp granularity of the
moment it was hashed could be missed that way ("racily clean"), so entries whose mtime is that
recent are not remembered and get hashed again next time.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from engine.cache.atomic import write_atomic
from engine.cache.store import BlobStore
from engine.canonical import canonical_json

StatKey = tuple[int, int, int, int]  # size, mtime_ns, inode, ctime_ns
RACY_NS = 2_000_000_000


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


class StatMemo:
    """The memo for one source root (a file or a directory tree)."""

    def __init__(self, store: BlobStore, source_root: Path) -> None:
        ident = hashlib.sha256(os.fsencode(source_root)).hexdigest()
        self._path = store.memo_dir / f"{ident}.json"
        self._old: dict[str, list[object]] = {}
        self._new: dict[str, list[object]] = {}
        self._started_ns = time.time_ns()
        try:
            with open(self._path, "rb") as f:
                data = json.load(f)
            if data.get("root") == os.fsdecode(source_root):
                self._old = data.get("entries", {})
        except (OSError, ValueError):
            pass
        self._root = os.fsdecode(source_root)
        self.hits = 0
        self.misses = 0

    def lookup(self, rel: str, key: StatKey) -> str | None:
        entry = self._old.get(rel)
        if entry is not None and tuple(entry[:4]) == key:
            self.hits += 1
            self._new[rel] = entry
            return str(entry[4])
        self.misses += 1
        return None

    def remember(self, rel: str, key: StatKey, digest_hex: str) -> None:
        # Writes set mtime (and ctime) to the coarse clock, so mtime alone tells raciness.
        if key[1] >= self._started_ns - RACY_NS:
            return
        self._new[rel] = [*key, digest_hex]

    def save(self) -> None:
        if self._new == self._old:
            return
        data = {"root": self._root, "entries": self._new}
        write_atomic(self._path, canonical_json(data), replace=True)
