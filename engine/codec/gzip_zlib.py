"""`gzip-zlib`: gzip through the system zlib, opt-in and not portable.

Its bytes are those of whatever zlib the Python process links: Debian and Ubuntu ship
madler's zlib, Fedora zlib-ng's compat build, s390x zlib drives the DFLTCC hardware, and
each makes other bytes for the same level. The identity names the runtime version, so a
cache never mixes them up, but two machines may disagree. Kept for users who want their
layers from the platform's own zlib; the default `gzip` is the portable one.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO

from engine.codec import Members, Reusable
from engine.codec.cut import RULE
from engine.oci import mediatypes

NAME = "gzip-zlib"
MEDIA_TYPE = mediatypes.OCI_LAYER_GZIP
PORTABLE = False
LEVELS: range | None = range(0, 10)
DEFAULT_LEVEL = 6


def identity(level: int) -> str:
    return f"gzip/zlib/{zlib.ZLIB_RUNTIME_VERSION}/level={level}/{RULE}"


def summary(level: int) -> str:
    return f"gzip via system zlib {zlib.ZLIB_RUNTIME_VERSION}, level {level} (this zlib only)"


class _ZlibGzip:
    """One gzip stream with a fixed header: no name, mtime 0, OS byte 255."""

    members: Members | None = None  # one stream: nothing a later build could copy
    reused = 0

    def __init__(self, sink: BinaryIO, level: int) -> None:
        self._sink = sink
        self._crc = 0
        self._size = 0
        self._z = zlib.compressobj(level, zlib.DEFLATED, -15, 9)
        sink.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")

    def write(self, data: bytes) -> int:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._sink.write(self._z.compress(data))
        return len(data)

    def close(self) -> None:
        self._sink.write(self._z.flush())
        self._sink.write(
            self._crc.to_bytes(4, "little") + (self._size & 0xFFFFFFFF).to_bytes(4, "little")
        )


def open(sink: BinaryIO, level: int, threads: int, reuse: Reusable | None) -> _ZlibGzip:
    return _ZlibGzip(sink, level)
