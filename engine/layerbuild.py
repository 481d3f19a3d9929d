"""Writes a planned layer: tar stream -> diff_id hash -> codec -> blob store, in one pass.

Nothing is held in memory beyond a read buffer and the codec's block. Source files are read
once, with O_NOFOLLOW (a file swapped for a symlink after planning is refused, not followed),
and must still match the size and stat data they were planned with: a source edited mid-build
fails the layer instead of producing bytes that disagree with the cache key.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from engine import testhooks
from engine.cache.memo import stat_key
from engine.cache.store import BlobStore
from engine.codec import Codec
from engine.descriptor import Descriptor
from engine.digest import Digest
from engine.errors import SourceError
from engine.events import CancelToken, EventSink, ProgressThrottle
from engine.plan import READ_CHUNK, LayerPlan, PlannedEntry
from engine.tarformat import DIRECTORY, END, REGULAR, SYMLINK, TarHeader, encode_header, padding

_TYPES = {"file": REGULAR, "dir": DIRECTORY, "symlink": SYMLINK}


@dataclass(frozen=True)
class BuiltLayer:
    descriptor: Descriptor
    diff_id: Digest
    uncompressed_size: int


def tar_header(entry: PlannedEntry, mtime: int) -> bytes:
    name = entry.path + "/" if entry.type == "dir" else entry.path
    return encode_header(
        TarHeader(
            name=name,
            type=_TYPES[entry.type],
            mode=entry.mode,
            uid=entry.uid,
            gid=entry.gid,
            size=entry.size,
            mtime=mtime,
            linkname=entry.target,
        )
    )


class _TarSink:
    """Counts and hashes the uncompressed stream on its way into the compressor."""

    def __init__(self, compressor: object, progress: ProgressThrottle, cancel: CancelToken | None):
        self._compressor = compressor
        self._hash = hashlib.sha256()
        self._progress = progress
        self._cancel = cancel
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self._hash.update(data)
        self._compressor.write(data)  # type: ignore[attr-defined]
        self.size += len(data)
        self._progress.advance(len(data))
        if self._cancel is not None:
            self._cancel.check()

    @property
    def digest(self) -> Digest:
        return Digest(self._hash.hexdigest())


def uncompressed_size(plan: LayerPlan) -> int:
    return sum(
        len(tar_header(e, plan.mtime)) + e.size + len(padding(e.size)) for e in plan.entries
    ) + len(END)


def write_layer(
    plan: LayerPlan,
    codec: Codec,
    store: BlobStore,
    index: int,
    sink: EventSink,
    cancel: CancelToken | None = None,
    threads: int = 0,
) -> BuiltLayer:
    total = uncompressed_size(plan)
    progress = ProgressThrottle(sink, index, "building", total)
    with store.writer() as blob:
        # testhooks: knobs `vinci verify` turns to prove they never change the bytes.
        compressor = testhooks.open_codec(codec, blob, threads)  # type: ignore[arg-type]
        tar = _TarSink(compressor, progress, cancel)
        try:
            buf = bytearray(testhooks.read_chunk(READ_CHUNK))
            view = memoryview(buf)
            for entry in plan.entries:
                tar.write(tar_header(entry, plan.mtime))
                if entry.type != "file":
                    continue
                if entry.inline is not None:
                    tar.write(entry.inline)
                else:
                    _copy_source(entry, tar, view)
                tar.write(padding(entry.size))
            tar.write(testhooks.trailer())  # b"" outside the test suite's faults
            tar.write(END)
        finally:
            # Closing flushes (or, on error, stops) the codec's worker threads either way.
            compressor.close()
        digest = blob.commit()
        size = blob.size
    return BuiltLayer(Descriptor(codec.media_type, digest, size), tar.digest, tar.size)


def _copy_source(entry: PlannedEntry, tar: _TarSink, view: memoryview) -> None:
    try:
        fd = os.open(entry.source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise SourceError(f"{entry.origin}: cannot read {entry.source}: {e.strerror}") from None
    try:
        if stat_key(os.fstat(fd)) != entry.stat:
            raise SourceError(f"{entry.source} changed since it was hashed; build again")
        remaining = entry.size
        while remaining:
            n = os.readv(fd, [view[: min(len(view), remaining)]])
            if n == 0:
                raise SourceError(f"{entry.source} shrank while it was being read; build again")
            tar.write(view[:n])
            remaining -= n
        if os.read(fd, 1):
            raise SourceError(f"{entry.source} grew while it was being read; build again")
    finally:
        os.close(fd)
