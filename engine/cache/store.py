"""The cache's on-disk layout and its content-addressed blob store.

    <root>/v1/blobs/sha256/<hex>        every blob: layers, configs, manifests
    <root>/v1/layers/<key>.json         cache key -> the layer's descriptors (LayerRecord)
    <root>/v1/memo/<id>.json            stat memo: (path, size, mtime, inode, ctime) -> digest
    <root>/v1/builds/<id>.json          what the last build of each spec referenced (for gc)
    <root>/v1/sources/<hex>.json        where a blob was fetched from (registry, repository)

A blob file exists only when complete and verified (see atomic.py). Last use is the mtime of
the layer record, touched on every hit.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

from engine.cache.atomic import AtomicFile
from engine.errors import CacheError
from engine.oci.digest import Digest

LAYOUT_VERSION = "v1"  # the cache's on-disk layout version: <base>/v1/...


def cache_base(given: str | os.PathLike[str] | None = None) -> str:
    """The cache directory (without its layout version): the one given (--cache-dir),
    $VINCI_CACHE_DIR, $XDG_CACHE_HOME/vinci, else ~/.cache/vinci."""
    if given:
        return os.fspath(given)
    env = os.environ.get("VINCI_CACHE_DIR")
    if env:
        return env
    xdg = os.environ.get("XDG_CACHE_HOME")
    return os.path.join(xdg if xdg else os.path.join(os.path.expanduser("~"), ".cache"), "vinci")


def default_cache_root() -> Path:
    return Path(cache_base())


class BlobWriter:
    """Streams a blob into the store, hashing as it goes. Nothing is visible until commit.

    A store `mirrored` into a directory (an OCI layout's blobs/sha256, engine/output) writes
    each blob there too, as it is made: the output then needs no copy of it after the build,
    a second pass over every new layer (half a second for 400 MB here)."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._file = AtomicFile(store.blob_dir)
        self._mirror = (
            AtomicFile(store.mirror, flush_behind=False) if store.mirror is not None else None
        )
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self._hash.update(data)
        self.size += len(data)
        if self._mirror is not None:
            self._mirror.write(data)
        return self._file.write(data)

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    @property
    def digest(self) -> Digest:
        return Digest(self._hash.hexdigest())

    def commit(self, expected: Digest | None = None) -> Digest:
        digest = self.digest
        if expected is not None and digest != expected:
            self.discard()
            raise CacheError(f"blob content is {digest}, expected {expected}; not stored")
        self._file.commit(self._store.blob_path(digest), sync_name=False)
        if self._mirror is not None and self._store.mirror is not None:
            # Not durable: the output's other blobs are not fsync'd either (layout.py).
            self._mirror.commit(self._store.mirror / digest.hex, durable=False)
        return digest

    def discard(self) -> None:
        self._file.discard()
        if self._mirror is not None:
            self._mirror.discard()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


class BlobStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or default_cache_root()) / LAYOUT_VERSION
        self.blob_dir = self.root / "blobs" / "sha256"
        self.layer_dir = self.root / "layers"
        self.memo_dir = self.root / "memo"
        self.build_dir = self.root / "builds"
        self.source_dir = self.root / "sources"
        # Made on first use (engine/cache/members.py): most caches never need them.
        self.member_dir = self.root / "members"
        self.slot_dir = self.root / "slots"
        self.mirror: Path | None = None
        try:
            for d in (
                self.blob_dir,
                self.layer_dir,
                self.memo_dir,
                self.build_dir,
                self.source_dir,
            ):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(f"cannot use cache directory {self.root}: {e.strerror}") from None

    def blob_path(self, digest: Digest) -> Path:
        return self.blob_dir / digest.hex

    def has_blob(self, digest: Digest, size: int | None = None) -> bool:
        try:
            st = os.stat(self.blob_path(digest))
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def open_blob(self, digest: Digest) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise CacheError(f"blob {digest} is not in the cache ({self.root})") from None

    def read_blob(self, digest: Digest) -> bytes:
        """Whole blob; only for small JSON blobs (configs, manifests, indexes)."""
        with self.open_blob(digest) as f:
            return f.read()

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def mirrored(self, directory: Path) -> BlobStore:
        """This store, but every blob written through it is written into `directory` too
        (see BlobWriter). A view: the store itself is unchanged, for other builds."""
        import copy

        view = copy.copy(self)
        view.mirror = directory
        return view

    def put_bytes(self, data: bytes) -> Digest:
        digest = Digest.of_bytes(data)
        if self.has_blob(digest, len(data)):
            # Content-addressed: a present blob of this name and size is these bytes. A
            # rebuild re-assembles the same config and manifest; rewriting them would cost
            # two fsyncs each for nothing.
            return digest
        with self.writer() as w:
            w.write(data)
            return w.commit()
