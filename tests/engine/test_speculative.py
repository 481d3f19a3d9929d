"""How a layer whose sources the stat memo does not know gets its key
(engine/builder/plan.py): built at once and hashed from the bytes written ("speculative"), or
hashed first when the memo's last digests say it is probably cached ("verify"). Either way the
bytes and digests are the same as a fresh cache's, and a source is read no more often than
needed."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from engine.builder import layer as layerbuild
from engine.builder import plan
from engine.builder.pool import Builder
from engine.cache.store import BlobStore
from engine.spec import load_spec

OLD = 1_600_000_000  # an mtime long past: not "racily clean"


class Reads:
    """Counts pre-hash reads (plan.hash_file) and layer reads (layerbuild._copy_source)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hashed: Counter[str] = Counter()
        self.copied: Counter[str] = Counter()
        hash_file, copy_source = plan.hash_file, layerbuild._copy_source

        def counting_hash(path: str, *a: object, **k: object) -> str:
            self.hashed[os.path.basename(path)] += 1
            return hash_file(path, *a, **k)  # type: ignore[arg-type]

        def counting_copy(entry: plan.PlannedEntry, *a: object, **k: object) -> str | None:
            self.copied[os.path.basename(entry.source)] += 1
            return copy_source(entry, *a, **k)  # type: ignore[arg-type]

        monkeypatch.setattr(plan, "hash_file", counting_hash)
        monkeypatch.setattr(layerbuild, "_copy_source", counting_copy)

    def clear(self) -> None:
        self.hashed.clear()
        self.copied.clear()


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


def test_cold_build_reads_each_source_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _tree(tmp_path / "src")
    reads = Reads(monkeypatch)
    digest, hits = _build(spec, tmp_path / "c")
    assert hits == [False, False, False]
    assert reads.hashed == Counter()
    assert reads.copied == Counter({"a.txt": 1, "b.txt": 1, "tool.bin": 1, "big": 1})
    # The key it recorded is the one a later, memoized plan computes: a no-op rebuild hits
    # every layer and reads nothing, the two layers of one directory included.
    reads.clear()
    assert _build(spec, tmp_path / "c") == (digest, [True, True, True])
    assert reads.hashed == reads.copied == Counter()


def test_touched_source_is_hashed_not_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _tree(tmp_path / "src")
    digest, _ = _build(spec, tmp_path / "c")
    reads = Reads(monkeypatch)
    os.utime(spec.parent / "big", (OLD + 5, OLD + 5))  # same bytes, new stat data
    assert _build(spec, tmp_path / "c") == (digest, [True, True, True])
    assert reads.hashed == Counter({"big": 1})
    assert reads.copied == Counter()


def test_changed_source_same_size_is_rebuilt_correctly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _tree(tmp_path / "src")
    _build(spec, tmp_path / "c")
    (spec.parent / "app/b.txt").write_bytes(b"BETA\n")  # the memo's guess is now wrong
    os.utime(spec.parent / "app/b.txt", (OLD + 5, OLD + 5))
    reads = Reads(monkeypatch)
    digest, hits = _build(spec, tmp_path / "c")
    assert hits == [False, True, True]
    assert reads.hashed == Counter({"b.txt": 1})  # verified against the guess, which failed
    fresh, _ = _build(spec, tmp_path / "fresh")
    assert digest == fresh


def test_new_file_in_a_layer_builds_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _tree(tmp_path / "src")
    _build(spec, tmp_path / "c")
    (spec.parent / "app/c.txt").write_bytes(b"gamma\n")
    os.utime(spec.parent / "app/c.txt", (OLD, OLD))
    reads = Reads(monkeypatch)
    digest, hits = _build(spec, tmp_path / "c")
    assert hits == [False, True, True]
    assert reads.hashed == Counter()  # nothing to verify: the layer cannot be cached
    assert reads.copied == Counter({"a.txt": 1, "b.txt": 1, "c.txt": 1})
    assert digest == _build(spec, tmp_path / "fresh")[0]


def test_racy_source_is_a_hit_on_the_next_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file written just before the build is never trusted by its stat data, but its last
    digest is kept as a guess: rebuilding right away hashes it and hits, it is not rebuilt."""
    spec = _tree(tmp_path / "src")
    (spec.parent / "big").write_bytes(os.urandom(1 << 20))  # mtime: now
    digest, _ = _build(spec, tmp_path / "c")
    reads = Reads(monkeypatch)
    assert _build(spec, tmp_path / "c") == (digest, [True, True, True])
    assert reads.hashed == Counter({"big": 1})
    assert reads.copied == Counter()
