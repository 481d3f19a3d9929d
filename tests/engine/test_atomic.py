"""Files that appear whole or not at all (engine/cache/atomic.py), including a large file
flushed to disk behind its writer: the thread that flushes never outlives the file, and
never touches a descriptor after it is closed."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from engine.cache import atomic
from engine.cache.atomic import AtomicFile, write_atomic


def _flushers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "vinci-flush"]


def _write(f: AtomicFile, size: int) -> str:
    h = hashlib.sha256()
    block = os.urandom(1 << 20)
    for _ in range(size >> 20):
        f.write(block)
        h.update(block)
    return h.hexdigest()


def test_a_large_file_is_flushed_behind_and_committed_whole(tmp_path: Path) -> None:
    f = AtomicFile(tmp_path)
    digest = _write(f, atomic.WRITE_BEHIND + (4 << 20))
    assert len(_flushers()) == 1
    f.commit(tmp_path / "blob")
    assert _flushers() == []
    assert hashlib.sha256((tmp_path / "blob").read_bytes()).hexdigest() == digest


def test_a_discarded_large_file_leaves_no_thread_and_no_file(tmp_path: Path) -> None:
    with AtomicFile(tmp_path) as f:
        _write(f, atomic.WRITE_BEHIND + (2 << 20))
        assert len(_flushers()) == 1
    assert _flushers() == []
    assert list(tmp_path.iterdir()) == []


def test_small_files_start_no_thread(tmp_path: Path) -> None:
    before = threading.active_count()
    write_atomic(tmp_path / "small", b"x" * 1000)
    assert threading.active_count() == before
    assert (tmp_path / "small").read_bytes() == b"x" * 1000
