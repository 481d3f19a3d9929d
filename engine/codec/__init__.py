"""Layer compression as named, versioned codecs whose output depends on the input bytes alone.

The table of codecs users can name (`--compression`). Each lives in a module of its own and
says what it makes (media type), what caches remember it by (identity: library, version and
every setting that changes the bytes), and whether its bytes are portable: the same for the
same tar on every CPU and architecture, or on one CPU class only.

    gzip       the default: libdeflate, one gzip member per piece (gzip.py)     portable
    gzip-isal  isal, pigz's layout; faster, but its bytes follow the CPU        one CPU class
    gzip-zlib  the system zlib, which differs between distributions             one zlib build
    zstd       zstandard's bundled libzstd                                      portable
    none       the tar as is                                                    portable

A compressor can be deterministic from run to run and still make the layer digest depend on
how its input was fed, so every codec sits behind the cutter (cut.py), which hands it the
stream in pieces chosen by the tar entries themselves, whatever sizes the tar writer wrote.
The default codec makes each piece a gzip member of its own, so a later build of a similar
layer copies the members whose bytes it already has (`Reusable`) instead of compressing them.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from engine.codec.cut import TarCutter
from engine.cpus import available_cpus
from engine.errors import CodecError

# Per layer: more only adds blocks in flight (memory), not speed, on 2-8 cores.
MAX_THREADS = 4


def default_threads() -> int:
    return min(MAX_THREADS, available_cpus())


class Compressor(Protocol):
    def write(self, data: bytes | memoryview) -> Any: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Members:
    """How a compressed blob is made of independent members, in order: each member's
    uncompressed size, the CRC-32 of those bytes and its compressed size. Kept beside a blob
    (engine/cache/members.py) so that a later build can copy members instead of compressing."""

    codec: str  # the identity of the codec that made them
    sizes: tuple[tuple[int, int, int], ...]  # (uncompressed size, crc32, compressed size)

    _ITEM = struct.Struct("<III")

    def to_bytes(self) -> bytes:
        head = self.codec.encode() + b"\n"
        return head + b"".join(self._ITEM.pack(*m) for m in self.sizes)

    @classmethod
    def from_bytes(cls, data: bytes) -> Members:
        """Raises ValueError for anything but what to_bytes wrote."""
        head, sep, body = data.partition(b"\n")
        if not sep or len(body) % cls._ITEM.size:
            raise ValueError("not a member table")
        return cls(head.decode(), tuple(cls._ITEM.iter_unpack(body)))


@dataclass(frozen=True)
class Reusable:
    """A blob an earlier build compressed, with its members: a new layer's pieces whose bytes
    equal one of its members are copied from `path` (after decompressing it and comparing,
    so a wrong table or a damaged file can cost speed, never a byte)."""

    path: str
    members: Members


class Writing(Protocol):
    """What a codec module's `open` returns: it takes whole pieces from the cutter."""

    members: Members | None  # once closed: the blob's members, if the codec makes them
    reused: int  # once closed: uncompressed bytes copied from a Reusable, not compressed

    def write(self, piece: bytes) -> Any: ...
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
    def open(self, sink: BinaryIO, level: int, threads: int, reuse: Reusable | None) -> Writing: ...


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

    def open(
        self, sink: BinaryIO, threads: int = 0, reuse: Reusable | None = None
    ) -> LayerCompressor:
        """A writer that compresses into `sink`. Neither `threads` nor `reuse` ever changes
        the output; `reuse` is taken only if it was made by this very codec."""
        if reuse is not None and reuse.members.codec != self.identity:
            reuse = None
        inner = _module(self.name).open(sink, self.level, threads or default_threads(), reuse)
        return LayerCompressor(inner)


class LayerCompressor:
    """A layer's compressor: the tar stream in writes of any size, cut into pieces (cut.py)
    for the codec. After `close`, `members` and `reused` say what was made and copied."""

    def __init__(self, inner: Writing) -> None:
        self._inner = inner
        self._cutter = TarCutter(inner.write)

    def write(self, data: bytes | memoryview) -> int:
        return self._cutter.write(data)

    def close(self) -> None:
        try:
            self._cutter.close()
        finally:
            self._inner.close()

    @property
    def members(self) -> Members | None:
        return self._inner.members

    @property
    def reused(self) -> int:
        return self._inner.reused


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
    "CODEC_NAMES",
    "DEFAULT_CODEC",
    "MAX_THREADS",
    "Codec",
    "Compressor",
    "LayerCompressor",
    "Members",
    "Reusable",
    "default_threads",
    "get_codec",
    "library_version",
]
