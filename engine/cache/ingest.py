"""Bringing one imported blob into the cache, verified on the way in.

`Ingest` is a sink for a blob's bytes as they arrive (from a layout file, a tar member or an
HTTP body): it writes them to the cache under a temporary name, hashes them, and for layers
also decompresses them on the fly and hashes the result, so the digest and the diff_id are both
checked in one pass with bounded memory. Nothing becomes visible in the cache unless the digest
matches; a wrong digest or diff_id is a CorruptImportedImage naming the blob.

A compressed layer is decompressed and hashed in a thread of its own, fed through a small
bounded queue, while the caller's thread receives, hashes and writes the compressed bytes: the
inflate and the diff_id hash are most of a pull's work (docs/performance.md), both release the
GIL, and this way one layer uses two cores instead of one. An uncompressed layer's diff_id is
its digest, so it is hashed once.

Compression of a layer comes from its media type, or (docker-archive layers, which carry no
media type) from the stream's magic bytes.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass
from typing import Any, BinaryIO

from engine.cache.store import BlobStore, BlobWriter
from engine.cancel import CancelToken
from engine.errors import CorruptImportedImage
from engine.oci.digest import Digest
from engine.tar.compression import DECODE_ERRORS, SNIFF_BYTES, Inflater, inflater, sniff_compression

CHUNK = 1 << 20
# The decompressing thread is handed at least BLOCK bytes at a time (network reads are ~64
# KiB): fewer hand-offs and GIL round trips. At most DEPTH blocks wait for it, and one step
# of the inflater yields at most compression.OUT_CHUNK bytes, so memory per layer stays a few
# MiB whatever its size.
# Measured on a pull: 256 KiB in, up to 1 MiB out costs the least CPU; 1 MiB in and 4 MiB
# out costs 15% more (the output no longer stays in cache between inflate and hash).
BLOCK = 256 << 10
DEPTH = 8


class _Hasher:
    """A writable that hashes and counts (what the decompressors write into)."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return len(data)


class _Background:
    """A decoder run in its own thread: `write` queues (blocking while DEPTH blocks wait),
    `finish` waits for the rest and returns the decode error, if any; `abandon` stops it.

    The thread drains the queue until it is told to stop, even after a decode error, so the
    producer never waits on a thread that has given up."""

    def __init__(self, decoder: Inflater) -> None:
        self._decoder = decoder
        self._queue: queue.Queue[bytes | None] = queue.Queue(DEPTH)
        self._error: str | None = None
        self._crash: BaseException | None = None
        self._skip = False
        self._done = False
        self._thread = threading.Thread(target=self._run, name="vinci-inflate", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._skip or self._error is not None or self._crash is not None:
                continue
            try:
                self._decoder.write(data)
            except DECODE_ERRORS as e:
                self._error = str(e)
            except BaseException as e:  # re-raised in the caller's thread
                self._crash = e

    def write(self, data: bytes) -> None:
        self._queue.put(data)

    def _stop(self) -> None:
        if not self._done:
            self._done = True
            self._queue.put(None)
            self._thread.join()

    def finish(self) -> str | None:
        self._stop()
        if self._crash is not None:
            raise self._crash
        if self._error is None:
            try:
                self._decoder.close()
            except DECODE_ERRORS as e:
                self._error = str(e)
        return self._error

    def abandon(self) -> None:
        self._skip = True
        self._stop()


@dataclass(frozen=True)
class Ingested:
    digest: Digest
    size: int
    diff_id: Digest | None
    uncompressed_size: int
    compression: str


class Ingest:
    """Receives one blob. `compression` None: not a layer (no diff_id); "gzip", "zstd",
    "none", or "detect" to sniff it from the first bytes."""

    def __init__(self, store: BlobStore, what: str, compression: str | None = None) -> None:
        self._store = store
        self.what = what
        self._declared = compression
        self._inflater: _Background | None = None
        self._setup()

    def _setup(self) -> None:
        self.compression = self._declared
        self._writer: BlobWriter = self._store.writer()
        self._diff = _Hasher()
        self._inflater = None
        self._started = False
        self._pending = b""  # first bytes held back until the compression is known
        self._block: list[bytes] = []  # bytes not yet handed to the inflater
        self._block_size = 0
        self._failed: str | None = None

    def write(self, data: bytes) -> int:
        if not isinstance(data, bytes):
            data = bytes(data)  # it is queued: a caller's buffer may be reused
        self._writer.write(data)
        if self.compression is None:
            return len(data)
        if not self._started:
            self._pending += data
            if self.compression == "detect" and len(self._pending) < SNIFF_BYTES:
                return len(data)
            self._start()
            data, self._pending = self._pending, b""
        if self._inflater is not None:
            self._block.append(data)
            self._block_size += len(data)
            if self._block_size >= BLOCK:
                self._hand_over()
        return len(data)

    def _start(self) -> None:
        self._started = True
        if self.compression == "detect":
            self.compression = sniff_compression(self._pending)
        decoder = inflater(self.compression or "none", self._diff.write)
        # None ("none"): the diff_id is the digest the writer computes anyway.
        self._inflater = _Background(decoder) if decoder is not None else None

    def _hand_over(self) -> None:
        if self._inflater is None or not self._block:
            return
        block = self._block[0] if len(self._block) == 1 else b"".join(self._block)
        self._block, self._block_size = [], 0
        self._inflater.write(block)

    def reset(self) -> None:
        """Forget everything received (a download restarting from byte 0)."""
        self.discard()
        self._setup()

    def discard(self) -> None:
        if self._inflater is not None:
            self._inflater.abandon()
            self._inflater = None
        self._writer.discard()

    def _finish_layer(self) -> None:
        if not self._started:
            self._start()
            data, self._pending = self._pending, b""
            if data and self._inflater is not None:
                self._block.append(data)
        if self._inflater is not None:
            self._hand_over()
            self._failed = self._inflater.finish()
            self._inflater = None

    def commit(
        self,
        digest: Digest | None,
        size: int | None = None,
        diff_id: Digest | None = None,
    ) -> Ingested:
        """Check what was received and store it; raise CorruptImportedImage if it is not
        the blob it claims to be. `digest` None: learn it (docker-archive layers)."""
        try:
            if self.compression is not None:
                self._finish_layer()
            got = self._writer.digest
            if digest is not None and got != digest:
                raise CorruptImportedImage(
                    f"corrupt imported image {self.what}: blob {digest} does not match its "
                    f"digest (its bytes hash to {got})"
                )
            if size is not None and self._writer.size != size:
                raise CorruptImportedImage(
                    f"corrupt imported image {self.what}: blob {got} is {self._writer.size} "
                    f"bytes, its descriptor says {size}"
                )
            layer_diff: Digest | None = None
            usize = -1
            if self.compression == "none":
                layer_diff, usize = got, self._writer.size
            elif self.compression is not None:
                if self._failed is not None:
                    raise CorruptImportedImage(
                        f"corrupt imported image {self.what}: layer {got} does not decompress "
                        f"as {self.compression}: {self._failed}"
                    )
                layer_diff, usize = Digest(self._diff.hash.hexdigest()), self._diff.size
            if diff_id is not None and layer_diff is not None and layer_diff != diff_id:
                raise CorruptImportedImage(
                    f"corrupt imported image {self.what}: layer {got} has diff_id "
                    f"{layer_diff}, the image config says {diff_id}"
                )
            self._writer.commit(got)
            return Ingested(
                got,
                self._writer.size,
                layer_diff,
                usize,
                self.compression or "none",
            )
        finally:
            self.discard()


def ingest_stream(
    store: BlobStore,
    stream: BinaryIO,
    what: str,
    *,
    digest: Digest | None,
    size: int | None,
    compression: str | None = None,
    diff_id: Digest | None = None,
    progress: Any = None,
    cancel: CancelToken | None = None,
) -> Ingested:
    """Copy `stream` into the cache through an Ingest, in bounded chunks, and never more
    than one byte past the declared `size`: a blob that is larger than its descriptor says is
    refused as soon as that is seen, not after it has filled the disk."""
    sink = Ingest(store, what, compression)
    received = 0
    try:
        while True:
            if cancel is not None:
                cancel.check()
            want = CHUNK if size is None else min(CHUNK, size + 1 - received)
            data = stream.read(want)
            if not data:
                break
            received += len(data)
            if size is not None and received > size:
                blob = f"blob {digest}" if digest is not None else "a layer"
                raise CorruptImportedImage(
                    f"corrupt imported image {what}: {blob} is larger than the {size} bytes "
                    "its descriptor says"
                )
            sink.write(data)
            if progress is not None:
                progress(len(data))
        return sink.commit(digest, size, diff_id)
    finally:
        sink.discard()
