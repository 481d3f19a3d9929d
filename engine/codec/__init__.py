"""Layer compression as named, versioned codecs whose output depends on the input bytes alone.

The table of codecs users can name (`--compression`). Each lives in a module of its own and
says what it makes (media type), what caches remember it by (identity: library, version and
every setting that changes the bytes), and whether its bytes are portable: the same for the
same tar on every CPU and architecture, or on one CPU class only.

    gzip       the default: libdeflate, one gzip member per block (gzip.py)     portable
    gzip-isal  isal, pigz's layout; faster, but its bytes follow the CPU        one CPU class
    gzip-zlib  the system zlib, which differs between distributions             one zlib build
    zstd       zstandard's bundled libzstd                                      portable
    none       the tar as is                                                    portable

A compressor can be deterministic from run to run and still make the layer digest depend on
how its input was fed, so every codec sits behind a re-blocker that hands it fixed-size blocks
(BLOCK_SIZE), whatever sizes the tar writer produced.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from engine.cpus import available_cpus
from engine.errors import CodecError

BLOCK_SIZE = 1 << 20

# Per layer: more only adds blocks in flight (memory), not speed, on 2-8 cores.
MAX_THREADS = 4


def default_threads() -> int:
    return min(MAX_THREADS, available_cpus())


class Compressor(Protocol):
    def write(self, data: bytes | memoryview) -> Any: ...
    def close(self) -> None: ...


class _Module(Protocol):
    """What each codec module provides (see gzip.py for the default)."""

    NAME: str
    MEDIA_TYPE: str
    PORTABLE: bool
    LEVELS: range | None
    DEFAULT_LEVEL: int

    def identity(self, level: int) -> str: ...
    def summary(self, level: int) -> str: ...
    def open(self, sink: BinaryIO, level: int, threads: int) -> Compressor: ...


@dataclass(frozen=True)
class Codec:
    """A compression method. `name` is what users type; `identity` is what caches and locks
    remember; `portable` says whether the bytes are the same on every CPU and architecture."""

    name: str
    media_type: str
    identity: str
    level: int
    summary: str
    portable: bool = True

    def open(self, sink: BinaryIO, threads: int = 0) -> Compressor:
        """A writer that compresses into `sink`. `threads` never changes the output."""
        inner = _module(self.name).open(sink, self.level, threads or default_threads())
        return _Reblocker(inner, BLOCK_SIZE)


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


@functools.cache
def library_version(module: str) -> str:
    """The installed version of a codec library, for its identity. The module's own
    `__version__` (isal, zstandard and deflate all have one, written from the same source as
    their distribution metadata) is read first: importing one takes under a millisecond, while
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


CODEC_NAMES = ("gzip", "gzip-isal", "gzip-zlib", "zstd", "none")
DEFAULT_CODEC = "gzip"
_MODULES = {
    "gzip": "gzip",
    "gzip-isal": "gzip_isal",
    "gzip-zlib": "gzip_zlib",
    "zstd": "zstd",
    "none": "none",
}


def _module(name: str) -> _Module:
    """The module of codec `name`, imported on first use: a build loads only its own."""
    import importlib

    found = _MODULES.get(name)
    if found is None:
        raise CodecError(f"unknown compression {name!r} (choose {', '.join(CODEC_NAMES)})")
    module: _Module = importlib.import_module(f"engine.codec.{found}")
    return module


def get_codec(name: str = DEFAULT_CODEC, level: int | None = None) -> Codec:
    """The codec `name` at `level` (its default level when None). Raises CodecError for a
    name or level that does not exist: before any layer is written, not inside one."""
    module = _module(name)
    allowed = module.LEVELS
    if level is not None and allowed is None:
        raise CodecError(f"--compression {name} takes no level")
    if level is not None and allowed is not None and level not in allowed:
        raise CodecError(
            f"compression level {level} is not available for {name} "
            f"(choose {allowed.start} to {allowed.stop - 1})"
        )
    lv = module.DEFAULT_LEVEL if level is None else level
    return Codec(
        name, module.MEDIA_TYPE, module.identity(lv), lv, module.summary(lv), module.PORTABLE
    )


__all__ = [
    "BLOCK_SIZE",
    "CODEC_NAMES",
    "DEFAULT_CODEC",
    "MAX_THREADS",
    "Codec",
    "Compressor",
    "default_threads",
    "get_codec",
    "library_version",
]
