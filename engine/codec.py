"""Layer compression as named, versioned codecs whose output depends on the input bytes alone.

A compressor can be deterministic from run to run and still make the layer digest depend on
how its input was fed: isal's threaded gzip writer, measured here, gives different bytes for
different write sizes (though the same bytes for any thread count). So every codec sits behind
a re-blocker that hands the compressor fixed-size blocks, whatever sizes the tar writer
produced. The identity string names the library, its version and every setting that changes
the bytes; it goes into each layer's cache key and is reported with the build.
"""

from __future__ import annotations

import functools
import os
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from engine import mediatypes

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
            from isal import igzip_threaded

            # The raw threaded writer, without the io.BufferedWriter that igzip_threaded.open()
            # puts in front of it: that buffer (of block_size) hands the writer exactly the
            # blocks the re-blocker gives it, so the output is the same, but it costs two
            # copies of every block. Given a `bytes` block, the raw writer keeps it as is.
            inner = igzip_threaded._ThreadedGzipWriter(
                sink, "wb", level=self.level, threads=threads, block_size=BLOCK_SIZE
            )
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


def default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


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
