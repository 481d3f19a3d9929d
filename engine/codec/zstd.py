"""`zstd`: zstandard layers through the zstandard wheel, which bundles its libzstd (so the
wheel pins the bytes). Portable: one output native (AVX-512), under emulated x86-64 CPUs
without SSE4.2 and with AVX2, and on arm64 (tests/engine/test_machines.py)."""

from __future__ import annotations

from typing import BinaryIO

from engine.codec import BLOCK_SIZE, Compressor, library_version
from engine.oci import mediatypes

NAME = "zstd"
MEDIA_TYPE = mediatypes.OCI_LAYER_ZSTD
PORTABLE = True
LEVELS: range | None = range(1, 23)
DEFAULT_LEVEL = 3


def identity(level: int) -> str:
    return f"zstd/zstandard/{library_version('zstandard')}/level={level}/block={BLOCK_SIZE}"


def summary(level: int) -> str:
    return f"zstd via zstandard {library_version('zstandard')}, level {level}"


def open(sink: BinaryIO, level: int, threads: int) -> Compressor:
    import zstandard

    # threads >= 1 always: zstandard's threads=0 path gives a different stream.
    cctx = zstandard.ZstdCompressor(level=level, threads=max(1, threads))
    writer: Compressor = cctx.stream_writer(sink, closefd=False)
    return writer
