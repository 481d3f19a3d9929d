"""`zstd`: zstandard layers through the zstandard wheel, which bundles its libzstd (so the
wheel pins the bytes). Portable: one output native (AVX-512), under emulated x86-64 CPUs
without SSE4.2 and with AVX2, and on arm64 (tests/engine/test_machines.py)."""

from __future__ import annotations

from typing import Any, BinaryIO

from engine.codec import Members, Reusable, library_version
from engine.codec.cut import RULE
from engine.oci import mediatypes

NAME = "zstd"
MEDIA_TYPE = mediatypes.OCI_LAYER_ZSTD
PORTABLE = True
LEVELS: range | None = range(1, 23)
DEFAULT_LEVEL = 3


def identity(level: int) -> str:
    return f"zstd/zstandard/{library_version('zstandard')}/level={level}/{RULE}"


def summary(level: int) -> str:
    return f"zstd via zstandard {library_version('zstandard')}, level {level}"


class _Zstd:
    members: Members | None = None  # one frame: nothing a later build could copy
    reused = 0

    def __init__(self, sink: BinaryIO, level: int, threads: int) -> None:
        import zstandard

        # threads >= 1 always: zstandard's threads=0 path gives a different stream.
        cctx = zstandard.ZstdCompressor(level=level, threads=max(1, threads))
        self._writer: Any = cctx.stream_writer(sink, closefd=False)

    def write(self, piece: bytes) -> int:
        written: int = self._writer.write(piece)
        return written

    def close(self) -> None:
        self._writer.close()


def open(sink: BinaryIO, level: int, threads: int, reuse: Reusable | None) -> _Zstd:
    return _Zstd(sink, level, threads)
