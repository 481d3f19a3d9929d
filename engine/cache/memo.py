"""The stat memo: remembers each source file's content digest by its stat data.

Like git's index: (size, mtime_ns, inode, ctime_ns) unchanged means content unchanged, so an
unchanged source is never read again. A file modified within the timestamp granularity of the
moment it was hashed could be missed that way ("racily clean"), so entries whose mtime is that
recent are never trusted: they are kept only as a guess, and get hashed again next time.

A guess is the last digest seen for a path with the same size, whatever its stat data says. It
never stands in for a digest: the planner uses it only to choose between hashing a file first
(a touched file whose layer is probably cached) and building its layer straight away
(engine/builder/plan.py). One memo serves every layer of a build that reads the same root, so
entries a build did not look at are kept (for a few writes: a deleted file's entry does not
live forever).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from engine.cache.atomic import write_atomic
from engine.cache.statkey import StatKey, is_racy
from engine.cache.store import BlobStore
from engine.oci.canonical import canonical_json

KEEP_UNSEEN = 8  # writes of the memo an entry survives without being looked up


class StatMemo:
    """The memo for one source root (a file or a directory tree)."""

    def __init__(self, store: BlobStore, source_root: Path) -> None:
        ident = hashlib.sha256(os.fsencode(source_root)).hexdigest()
        self._path = store.memo_dir / f"{ident}.json"
        self._old: dict[str, list[object]] = {}
        self._new: dict[str, list[object]] = {}
        self._started_ns = time.time_ns()
        # Something to write: new digests, or no memo file yet (it is created on the first
        # save, so a root's memo exists from its first plan on).
        self._dirty = True
        try:
            with open(self._path, "rb") as f:
                data = json.load(f)
            if data.get("root") == os.fsdecode(source_root):
                self._old = data.get("entries", {})
                self._dirty = False
        except (OSError, ValueError, AttributeError):
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

    def guess(self, rel: str, size: int) -> str | None:
        """The last digest seen for `rel` if it had this size: a hint, never a digest."""
        entry = self._new.get(rel) or self._old.get(rel)
        if entry is not None and entry[0] == size:
            return str(entry[4])
        return None

    def remember(self, rel: str, key: StatKey, digest_hex: str) -> None:
        if not _utf8(rel):
            return  # a name that is not UTF-8 cannot be kept in JSON; it is hashed each time
        # Writes set mtime (and ctime) to the coarse clock, so mtime alone tells raciness. A
        # racy entry is kept as a guess only: a null mtime never equals a stat's.
        racy = is_racy(key[1], self._started_ns)
        self._new[rel] = [key[0], None, key[2], key[3], digest_hex] if racy else [*key, digest_hex]
        self._dirty = True

    def save(self) -> None:
        if not self._dirty or not _utf8(self._root):
            return
        entries: dict[str, list[object]] = {rel: e[:5] for rel, e in self._new.items()}
        for rel, e in self._old.items():
            if rel not in entries:
                unseen = int(e[5]) + 1 if len(e) > 5 else 1  # type: ignore[call-overload]
                if unseen <= KEEP_UNSEEN:
                    entries[rel] = [*e[:5], unseen]
        data = {"root": self._root, "entries": entries}
        # Not fsync'd: a memo lost or torn in a crash only means hashing the sources again.
        write_atomic(self._path, canonical_json(data), replace=True, durable=False)
        self._dirty = False


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
