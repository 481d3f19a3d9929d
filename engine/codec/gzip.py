"""`gzip`, the default codec: the same bytes for the same tar on every CPU and architecture.

The tar stream is cut into fixed blocks (BLOCK_SIZE, part of the identity) and each block is
a complete gzip member of its own: a fixed header, the block deflated by libdeflate with no
history, the block's CRC-32 and size. A gzip file of several members is standard (RFC 1952
§2.2; eStargz layers are made so) and every gzip reader vinci's images meet reads it: Go's
compress/gzip (containerd, podman, skopeo, umoci), GNU gzip, pigz, busybox, Python's gzip.

Why libdeflate (PyPI `deflate`, which bundles it, so the wheel pins the bytes): its CPU-
specific code (CRC-32, the match finder's table set-up and rebasing) computes the same values
on every CPU, so the parse it chooses does not depend on the instruction set; and measured so
(docs/reproducibility.md, tests/engine/test_machines.py): one output on x86-64 without
SSE4.2, with SSE4.2, with AVX2, with AVX-512, and on arm64. isal's choices depend on the CPU
and, once in ~400 runs, on where its state lies in memory; the system zlib differs between
distributions.

Why a member per block rather than one stream: a block's bytes then depend on that block
alone, so blocks compress on any number of threads with no dictionary hand-over, and nothing
about the machine or the run can leak into the output. The cost is about 4% in size against
`pigz -6` at level 1 (docs/performance.md).
"""

from __future__ import annotations

import functools
import struct
from typing import BinaryIO

from engine.codec import BLOCK_SIZE, Compressor, library_version
from engine.codec._pool import OrderedPool, write_all
from engine.oci import mediatypes

NAME = "gzip"
MEDIA_TYPE = mediatypes.OCI_LAYER_GZIP
PORTABLE = True
# libdeflate's levels; 1 is the fastest whose output is within 1.05x the size of pigz -6 on
# the benchmark corpus (1.042-1.049x; level 2 is 1.02x at 0.83x the speed).
LEVELS: range | None = range(1, 13)
DEFAULT_LEVEL = 1


@functools.cache
def header(level: int) -> bytes:
    """A member's fixed header: magic, deflate, no flags (so no name), mtime 0, then XFL as
    RFC 1952 has it (4: fastest, for level 1; 2: strongest, from level 8; else 0) and OS 255
    ("unknown"): nothing of the host or the clock. XFL 4 also tells this writer's layers from
    the system zlib's (XFL 0) when `vinci diff` meets them without a codec identity."""
    xfl = 4 if level <= 1 else 2 if level >= 8 else 0
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes((xfl, 0xFF))


def identity(level: int) -> str:
    return f"gzip/libdeflate-members/{library_version('deflate')}/level={level}/member={BLOCK_SIZE}"


def summary(level: int) -> str:
    members = f"{BLOCK_SIZE >> 20} MiB members"
    return f"gzip via libdeflate ({library_version('deflate')}), level {level}, {members}"


def member(block: bytes, level: int) -> tuple[bytes, bytearray, bytes]:
    """One complete gzip member holding `block`: a pure function of the block and the level.
    libdeflate releases the GIL while it compresses, so members are made in parallel."""
    import deflate

    body = deflate.deflate_compress(block, level)
    trailer = struct.pack("<II", deflate.crc32(block), len(block) & 0xFFFFFFFF)
    return header(level), body, trailer


class _MemberWriter:
    def __init__(self, sink: BinaryIO, level: int, threads: int) -> None:
        self._level = level
        self._any = False
        self._pool = OrderedPool(threads, member, lambda parts: write_all(sink, parts))

    def write(self, data: bytes | memoryview) -> int:
        if len(data) > BLOCK_SIZE:
            raise ValueError("blocks come from the re-blocker, at most BLOCK_SIZE each")
        self._any = True
        self._pool.submit(data if type(data) is bytes else bytes(data), self._level)
        return len(data)

    def close(self) -> None:
        if not self._any:
            self._pool.submit(b"", self._level)  # an empty input is still a gzip file
        self._pool.finish()


def open(sink: BinaryIO, level: int, threads: int) -> Compressor:
    return _MemberWriter(sink, level, threads)
