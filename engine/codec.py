"""Layer compression as named, versioned codecs whose output depends on the input bytes alone.

A compressor can be deterministic from run to run and still make the layer digest depend on
how its input was fed: isal's threaded gzip writer, measured here, gives different bytes for
different write sizes (though the same bytes for any thread count). So every codec sits behind
a re-blocker that hands the compressor fixed-size blocks, whatever sizes the tar writer
produced. The identity string names the library, its version and every setting that changes
the bytes; it goes into each layer's cache key and is reported with the build.
"""

from __future__ import annotations

import collections
import functools
import os
import struct
import threading
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from engine.oci import mediatypes

BLOCK_SIZE = 1 << 20


class Compressor(Protocol):
    def write(self, data: bytes | memoryview) -> Any: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Codec:
    """A compression method. `name` is what users type; `identity` is what caches remember."""

    name: str
    media_type: str
    identity: str
    level: int
    summary: str

    def open(self, sink: BinaryIO, threads: int = 0) -> Compressor:
        """A writer that compresses into `sink`. `threads` never changes the output."""
        threads = threads or default_threads()
        if self.name == "none":
            inner: Compressor = _Passthrough(sink)
        elif self.name == "gzip":
            inner = _IsalGzip(sink, self.level, threads)
        elif self.name == "gzip-zlib":
            inner = _ZlibGzip(sink, self.level)
        elif self.name == "zstd":
            import zstandard

            # threads >= 1 always: zstandard's threads=0 path gives a different stream.
            cctx = zstandard.ZstdCompressor(level=self.level, threads=max(1, threads))
            inner = cctx.stream_writer(sink, closefd=False)
        else:
            raise ValueError(f"unknown codec {self.name!r}")
        return _Reblocker(inner, BLOCK_SIZE)


MAX_THREADS = 4  # per layer: more only adds blocks in flight (memory), not speed, on 2-8 cores


def default_threads() -> int:
    return max(1, min(MAX_THREADS, os.cpu_count() or 1))


class _Reblocker:
    """Feeds `inner` in blocks of exactly `size` bytes (the last may be shorter)."""

    def __init__(self, inner: Compressor, size: int) -> None:
        self._inner = inner
        self._size = size
        self._buf = bytearray()

    def write(self, data: bytes | memoryview) -> int:
        n = len(data)
        if not self._buf and n == self._size:
            # Threaded compressors queue what they are given and callers reuse their buffers,
            # so a mutable block is copied; a `bytes` block is immutable and passed as is
            # (bytes(b) is b), which is the layer writer's zero-copy path.
            self._inner.write(data if type(data) is bytes else bytes(data))
            return n
        self._buf += data
        if len(self._buf) >= self._size:
            view = memoryview(self._buf)
            full = len(self._buf) - len(self._buf) % self._size
            for i in range(0, full, self._size):
                self._inner.write(bytes(view[i : i + self._size]))
            view.release()
            del self._buf[:full]
        return n

    def close(self) -> None:
        if self._buf:
            self._inner.write(bytes(self._buf))
            self._buf.clear()
        self._inner.close()


HISTORY = 1 << 15  # deflate's window: each block's dictionary is its predecessor's tail
FIRST_BLOCK_VOTES = 2  # equal outputs a block without history needs (engine/codec.py)
FIRST_BLOCK_TRIES = 6


class _IsalGzip:
    """gzip through isal's block compressor on our own threads, byte for byte the stream
    isal.igzip_threaded writes (pigz's layout: each block deflated with the previous block's
    last 32 KiB as its dictionary and sync-flushed, the CRCs combined), for one reason.

    isal 1.9.1 deflates a block that has no dictionary (a layer's first block) into a stream
    that depends on where the compressor's buffers happen to lie in memory: about one heap
    placement in 400 gives another, equally valid parse (a few bytes apart, same size).
    Threads, load and allocation order move those buffers, which is how a layer digest
    changed once in a while under CI load (tests/engine/test_codec.py reproduces it by
    shifting the heap, without threads). Blocks with a dictionary never varied. So a block
    without history is compressed by fresh compressors, each kept alive so that the next one
    lies elsewhere, until FIRST_BLOCK_VOTES of them agree: one extra compression of at most
    1 MiB per layer. Two placements that are both off and off the same way were never seen;
    a variant is particular to its placement.

    Also unlike isal's writer, no thread polls whether the thread that made the writer is
    still alive, and the calling thread writes the blocks out in order itself.
    """

    def __init__(self, sink: BinaryIO, level: int, threads: int) -> None:
        from isal import isal_zlib

        self._isal = isal_zlib
        self._sink = sink
        self._level = level
        # As isal's writer sizes it: deflate may grow incompressible data a little (level 0,
        # one fixed Huffman table, by more).
        self._out_size = (
            2 * BLOCK_SIZE + 500 if level == 0 else BLOCK_SIZE + max(BLOCK_SIZE // 10, 500)
        )
        # One thread means the caller's: `--jobs 1` keeps the whole build on one thread.
        self._pool = (
            ThreadPoolExecutor(threads, thread_name_prefix="vinci-gzip") if threads > 1 else None
        )
        self._local = threading.local()
        self._pending: collections.deque[Future[tuple[bytes, int, int]]] = collections.deque()
        self._limit = 2 * max(1, threads)  # blocks in flight: bounds memory
        self._previous = b""
        self._crc = 0
        self._size = 0
        # isal's header: no name, mtime 0, then 0xff and the XFL byte, in that order.
        sink.write(struct.pack("<BBBBIBB", 0x1F, 0x8B, 8, 0, 0, 0xFF, 4 if level == 0 else 0))

    def write(self, data: bytes | memoryview) -> int:
        block = data if type(data) is bytes else bytes(data)
        if len(block) > BLOCK_SIZE:
            raise ValueError("blocks come from the re-blocker, at most BLOCK_SIZE each")
        zdict = memoryview(self._previous)[-HISTORY:]
        self._previous = block
        if self._pool is None:
            self._emit(*self._compress(block, zdict))
            return len(block)
        self._pending.append(self._pool.submit(self._compress, block, zdict))
        while len(self._pending) > self._limit:
            self._write_next()
        return len(block)

    def _compressor(self) -> Any:
        return self._isal._ParallelCompress(buffersize=self._out_size, level=self._level)

    def _compress(self, block: bytes, zdict: memoryview) -> tuple[bytes, int, int]:
        if len(zdict):
            compressor = getattr(self._local, "compressor", None)
            if compressor is None:
                compressor = self._local.compressor = self._compressor()
            out, crc = compressor.compress_and_crc(block, zdict)
            return out, crc, len(block)
        return (*without_history(self._compressor, block), len(block))

    def _write_next(self) -> None:
        self._emit(*self._pending.popleft().result())

    def _emit(self, out: bytes, crc: int, n: int) -> None:
        self._crc = self._isal.crc32_combine(self._crc, crc, n)
        self._size += n
        self._sink.write(out)

    def close(self) -> None:
        try:
            while self._pending:
                self._write_next()
            self._sink.write(self._isal.compress(b"", wbits=-15))
            self._sink.write(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        finally:
            for future in self._pending:
                future.cancel()
            self._pending.clear()
            if self._pool is not None:
                self._pool.shutdown(wait=True)


def without_history(new: Any, block: bytes) -> tuple[bytes, int]:
    """Deflate `block` with no dictionary as most compressor placements do: fresh compressors
    from `new()`, all kept alive (so each lies elsewhere in memory), until FIRST_BLOCK_VOTES
    outputs agree (see _IsalGzip). The CRC depends on the bytes alone."""
    votes: collections.Counter[bytes] = collections.Counter()
    live = []
    crc = 0
    for _ in range(FIRST_BLOCK_TRIES):
        compressor = new()
        live.append(compressor)
        out, crc = compressor.compress_and_crc(block, memoryview(b""))
        votes[out] += 1
        if votes[out] >= FIRST_BLOCK_VOTES:
            return out, crc
    raise RuntimeError(
        f"isal gave {len(votes)} different streams for one block in {FIRST_BLOCK_TRIES} tries"
    )


class _Passthrough:
    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink

    def write(self, data: bytes | memoryview) -> int:
        return self._sink.write(data)

    def close(self) -> None:
        pass


class _ZlibGzip:
    """gzip through the system zlib, with a fixed header: no name, mtime 0, OS byte 255."""

    def __init__(self, sink: BinaryIO, level: int) -> None:
        self._sink = sink
        self._crc = 0
        self._size = 0
        self._z = zlib.compressobj(level, zlib.DEFLATED, -15, 9)
        sink.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")

    def write(self, data: bytes | memoryview) -> int:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._sink.write(self._z.compress(data))
        return len(data)

    def close(self) -> None:
        self._sink.write(self._z.flush())
        self._sink.write(
            self._crc.to_bytes(4, "little") + (self._size & 0xFFFFFFFF).to_bytes(4, "little")
        )


@functools.cache
def _version(module: str) -> str:
    """The installed version of a codec library, for its identity. The module's own
    `__version__` (isal and zstandard both have one, written from the same source as their
    distribution metadata) is read first: importing isal takes under a millisecond, while
    importlib.metadata costs ~20 ms of start-up, a tenth of a no-op rebuild."""
    try:
        import importlib

        found = getattr(importlib.import_module(module), "__version__", None)
        if isinstance(found, str) and found:
            return found
    except ImportError:
        pass
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "unknown"


# Levels each library accepts: a level outside them is a usage error, not a crash mid-layer.
LEVELS = {"gzip": range(0, 4), "gzip-zlib": range(0, 10), "zstd": range(1, 23)}


def _make(name: str, level: int | None = None) -> Codec:
    allowed = LEVELS.get(name)
    if level is not None and allowed is not None and level not in allowed:
        raise ValueError(
            f"compression level {level} is not available for {name} "
            f"(choose {allowed.start} to {allowed.stop - 1})"
        )
    if level is not None and name == "none":
        raise ValueError("--compression none takes no level")
    if name == "none":
        return Codec("none", mediatypes.OCI_LAYER, "none", 0, "uncompressed tar")
    if name == "gzip":
        lv = 2 if level is None else level
        return Codec(
            "gzip",
            mediatypes.OCI_LAYER_GZIP,
            f"gzip/isal-igzip-threaded/{_version('isal')}/level={lv}/block={BLOCK_SIZE}",
            lv,
            f"gzip via isal {_version('isal')}, level {lv}",
        )
    if name == "gzip-zlib":
        lv = 6 if level is None else level
        return Codec(
            "gzip-zlib",
            mediatypes.OCI_LAYER_GZIP,
            f"gzip/zlib/{zlib.ZLIB_RUNTIME_VERSION}/level={lv}/block={BLOCK_SIZE}",
            lv,
            f"gzip via system zlib {zlib.ZLIB_RUNTIME_VERSION}, level {lv}",
        )
    if name == "zstd":
        lv = 3 if level is None else level
        return Codec(
            "zstd",
            mediatypes.OCI_LAYER_ZSTD,
            f"zstd/zstandard/{_version('zstandard')}/level={lv}/block={BLOCK_SIZE}",
            lv,
            f"zstd via zstandard {_version('zstandard')}, level {lv}",
        )
    raise ValueError(f"unknown compression {name!r} (choose gzip, gzip-zlib, zstd or none)")


CODEC_NAMES = ("gzip", "gzip-zlib", "zstd", "none")
DEFAULT_CODEC = "gzip"


def get_codec(name: str = DEFAULT_CODEC, level: int | None = None) -> Codec:
    return _make(name, level)
