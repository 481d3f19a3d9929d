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

from engine.builder import testhooks
from engine.builder.allocator import keep_block_memory
from engine.builder.plan import READ_CHUNK, LayerPlan, PlannedEntry
from engine.cache.statkey import stat_key
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.codec import Codec, Compressor, Members, Reusable
from engine.errors import SourceError
from engine.events import EventSink, ProgressThrottle
from engine.oci.descriptor import Descriptor
from engine.oci.digest import Digest
from engine.tar.format import DIRECTORY, END, REGULAR, SYMLINK, TarHeader, encode_header, padding

_TYPES = {"file": REGULAR, "dir": DIRECTORY, "symlink": SYMLINK}


@dataclass(frozen=True)
class BuiltLayer:
    descriptor: Descriptor
    diff_id: Digest
    uncompressed_size: int
    # (entry index, sha256 hex) for every entry planned without a content digest: hashed
    # from the very bytes that went into the layer (see engine/builder/plan.py, "speculative").
    content_digests: tuple[tuple[int, str], ...] = ()
    members: Members | None = None  # how the blob is made of members, if its codec says
    reused: int = 0  # uncompressed bytes copied from an earlier blob instead of compressed


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


class TarSink:
    """Counts and hashes the uncompressed stream on its way into the compressor (if any:
    without one, the stream is only hashed)."""

    def __init__(
        self,
        compressor: Compressor | None,
        progress: ProgressThrottle | None,
        cancel: CancelToken | None,
    ):
        self._compressor = compressor
        self._hash = hashlib.sha256()
        self._progress = progress
        self._cancel = cancel
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self._hash.update(data)
        if self._compressor is not None:
            self._compressor.write(data)
        self.size += len(data)
        if self._progress is not None:
            self._progress.advance(len(data))
        if self._cancel is not None:
            self._cancel.check()

    @property
    def digest(self) -> Digest:
        return Digest(self._hash.hexdigest())


def _progress_total(plan: LayerPlan) -> int:
    """The tar's size for progress, counting one 512-byte header per entry: an entry whose
    name needs a PAX header adds a few hundred bytes more. Encoding every header just to
    count them cost a 1,000-file layer ~20 ms."""
    return sum(512 + e.size + (-e.size % 512) for e in plan.entries) + len(END)


def write_layer(
    plan: LayerPlan,
    codec: Codec,
    store: BlobStore,
    index: int,
    sink: EventSink,
    cancel: CancelToken | None = None,
    threads: int = 0,
    reuse: Reusable | None = None,
) -> BuiltLayer:
    """Writes the layer into the store; `reuse`, an earlier blob of the same codec, lets the
    codec copy members it already made (never changing a byte: engine/codec/gzip.py)."""
    total = _progress_total(plan)
    progress = ProgressThrottle(sink, index, "building", total)
    with store.writer() as blob:
        keep_block_memory()
        # testhooks: knobs `vinci verify` turns to prove they never change the bytes.
        compressor = testhooks.open_codec(codec, blob, threads, reuse)  # type: ignore[arg-type]
        tar = TarSink(compressor, progress, cancel)
        try:
            content = _stream_tar(plan, tar)
        finally:
            # Closing flushes (or, on error, stops) the codec's worker threads either way.
            compressor.close()
        digest = blob.commit()
        size = blob.size
    return BuiltLayer(
        Descriptor(codec.media_type, digest, size),
        tar.digest,
        tar.size,
        tuple(content),
        compressor.members,
        compressor.reused,
    )


def tar_digest(plan: LayerPlan, cancel: CancelToken | None = None) -> tuple[Digest, int]:
    """The diff_id and size `write_layer` would produce for `plan`, without compressing or
    storing anything: the same stream, into a hash (vinci.lock matches layers by it)."""
    tar = TarSink(None, None, cancel)
    _stream_tar(plan, tar)
    return tar.digest, tar.size


def _stream_tar(plan: LayerPlan, tar: TarSink) -> list[tuple[int, str]]:
    """Writes the layer's tar stream into `tar`; returns (entry index, content digest) for
    the files that had no digest yet and were hashed on the way."""
    content: list[tuple[int, str]] = []
    chunk = testhooks.read_chunk(READ_CHUNK)
    for i, entry in enumerate(plan.entries):
        tar.write(tar_header(entry, plan.mtime))
        if entry.type != "file":
            continue
        if entry.inline is not None:
            tar.write(entry.inline)
        else:
            hashed = _copy_source(entry, tar, chunk, hashing=not entry.digest)
            if hashed is not None:
                content.append((i, hashed))
        tar.write(padding(entry.size))
    tar.write(testhooks.trailer())  # b"" outside the test suite's faults
    tar.write(END)
    return content


def _copy_source(entry: PlannedEntry, tar: TarSink, chunk: int, hashing: bool) -> str | None:
    """Streams one source file into the layer; with `hashing`, returns its content digest.

    Reads of READ_CHUNK end where the codec's cutter cuts a large file (every CHUNK of its
    data, engine/codec/cut.py): a whole chunk read into a fresh `bytes` goes to the compressor
    without being copied again, which matters when a layer is a few large files. Read sizes
    never change the output.
    """
    try:
        fd = os.open(entry.source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise SourceError(f"{entry.origin}: cannot read {entry.source}: {e.strerror}") from None
    h = hashlib.sha256() if hashing else None
    try:
        if stat_key(os.fstat(fd)) != entry.stat:
            raise SourceError(f"{entry.source} changed since it was hashed; build again")
        remaining = entry.size
        while remaining:
            data = os.read(fd, min(chunk, remaining))
            if not data:
                raise SourceError(f"{entry.source} shrank while it was being read; build again")
            if h is not None:
                h.update(data)
            tar.write(data)
            remaining -= len(data)
        if os.read(fd, 1):
            raise SourceError(f"{entry.source} grew while it was being read; build again")
        if h is not None and stat_key(os.fstat(fd)) != entry.stat:
            # The bytes written and hashed agree with each other, but the memo would pair this
            # stat data with content the file may no longer have.
            raise SourceError(f"{entry.source} changed while it was being read; build again")
    finally:
        os.close(fd)
    return h.hexdigest() if h is not None else None
