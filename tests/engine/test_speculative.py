"""How a layer whose sources the stat memo does not know gets its key
(engine/builder/plan.py): built at once and hashed from the bytes written ("speculative"), or
hashed first when the memo's last digests say it is probably cached ("verify"). Either way the
bytes and digests are the same as a fresh cache's, and a source is read no more often than
needed."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

from engine.builder.pool import Builder
from engine.cache.store import BlobStore
from engine.spec.load import load_spec

OLD = 1_600_000_000  # an mtime long past: not "racily clean"


class Reads:
    """Counts how often each source file is opened during a build, by name: an audit hook
    sees every open, whoever makes it (Python's hooks cannot be removed, so one hook is
    installed for the session and each Reads listens while it lives)."""

    listening: list[Reads] = []

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.opened: Counter[str] = Counter()
        if not Reads.listening:
            sys.addaudithook(Reads._hook)
        Reads.listening[:] = [self]

    @staticmethod
    def _hook(event: str, args: tuple[object, ...]) -> None:
        if event != "open" or not Reads.listening or not isinstance(args[0], str | bytes):
            return
        path = os.fsdecode(args[0])
        reads = Reads.listening[0]
        if path.startswith(reads.root + os.sep) and not path.endswith((".yaml", ".json")):
            reads.opened[os.path.basename(path)] += 1

    def clear(self) -> None:
        self.opened.clear()


SPEC = """\
spec-version: v1
layers:
  - directory: {path: /app, source: ./app, include: ["*.txt"]}
  - directory: {path: /bin, source: ./app, include: ["*.bin"]}
  - file: {path: /big, source: ./big}
"""


def _tree(root: Path) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "app/a.txt").write_bytes(b"alpha\n" * 1000)
    (root / "app/b.txt").write_bytes(b"beta\n")
    (root / "app/tool.bin").write_bytes(bytes(range(256)) * 4000)
    (root / "big").write_bytes(os.urandom(3 << 20))
    (root / "vinci.yaml").write_text(SPEC)
    for p in [*root.rglob("*")]:
        os.utime(p, (OLD, OLD))
    return root / "vinci.yaml"


def _build(spec: Path, cache: Path) -> tuple[str, list[bool]]:
    result = Builder(BlobStore(cache), jobs=2).build(load_spec(spec))
    return str(result.manifest.digest), [r.cache_hit for r in result.layers]


def test_cold_build_reads_each_source_once(tmp_path: Path) -> None:
    spec = _tree(tmp_path / "src")
    reads = Reads(spec.parent)
    digest, hits = _build(spec, tmp_path / "c")
    assert hits == [False, False, False]
    assert reads.opened == Counter({"a.txt": 1, "b.txt": 1, "tool.bin": 1, "big": 1})
    # The key it recorded is the one a later, memoized plan computes: a no-op rebuild hits
    # every layer and reads nothing, the two layers of one directory included.
    reads.clear()
    assert _build(spec, tmp_path / "c") == (digest, [True, True, True])
    assert reads.opened == Counter()


def test_touched_source_is_hashed_not_rebuilt(tmp_path: Path) -> None:
    spec = _tree(tmp_path / "src")
    digest, _ = _build(spec, tmp_path / "c")
    reads = Reads(spec.parent)
    os.utime(spec.parent / "big", (OLD + 5, OLD + 5))  # same bytes, new stat data
    assert _build(spec, tmp_path / "c") == (digest, [True, True, True])
    assert reads.opened == Counter({"big": 1})  # hashed once; the cached layer is not rewritten


def test_changed_source_same_size_is_rebuilt_correctly(tmp_path: Path) -> None:
    spec = _tree(tmp_path / "src")
    _build(spec, tmp_path / "c")
    (spec.parent / "app/b.txt").write_bytes(b"BETA\n")  # the memo's guess is now wrong
    os.utime(spec.parent / "app/b.txt", (OLD + 5, OLD + 5))
    reads = Reads(spec.parent)
    digest, hits = _build(spec, tmp_path / "c")
    assert hits == [False, True, True]
    # b.txt hashed against the guess, which failed; then its layer written: b.txt and a.txt.
    assert reads.opened == Counter({"b.txt": 2, "a.txt": 1})
    fresh, _ = _build(spec, tmp_path / "fresh")
    assert digest == fresh


def test_new_file_in_a_layer_builds_at_once(tmp_path: Path) -> None:
    spec = _tree(tmp_path / "src")
    _build(spec, tmp_path / "c")
    (spec.parent / "app/c.txt").write_bytes(b"gamma\n")
    os.utime(spec.parent / "app/c.txt", (OLD, OLD))
    reads = Reads(spec.parent)
    digest, hits = _build(spec, tmp_path / "c")
    assert hits == [False, True, True]
    # Nothing hashed first (the layer cannot be cached): each file read once, as written.
    assert reads.opened == Counter({"a.txt": 1, "b.txt": 1, "c.txt": 1})
    assert digest == _build(spec, tmp_path / "fresh")[0]


def test_racy_source_is_a_hit_on_the_next_build(tmp_path: Path) -> None:
    """A file written just before the build is never trusted by its stat data, but its last
    digest is kept as a guess: rebuilding right away hashes it and hits, it is not rebuilt."""
    spec = _tree(tmp_path / "src")
    (spec.parent / "big").write_bytes(os.urandom(1 << 20))  # mtime: now
    digest, _ = _build(spec, tmp_path / "c")
    reads = Reads(spec.parent)
    assert _build(spec, tmp_path / "c") == (digest, [True, True, True])
    assert reads.opened == Counter({"big": 1})
