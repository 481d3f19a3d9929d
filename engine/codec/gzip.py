"""`gzip`, the default codec: the same bytes for the same tar on every CPU and architecture.

The cutter (cut.py) hands over the tar stream in pieces chosen by its entries, and each piece
becomes a complete gzip member of its own: a fixed header, the piece deflated by libdeflate
with no history, the piece's CRC-32 and size. A gzip file of several members is standard
(RFC 1952 §2.2; eStargz layers are made so) and every gzip reader vinci's images meet reads
it: Go's compress/gzip (containerd, podman, skopeo, umoci), GNU gzip, pigz, busybox, Python's
gzip.

Why libdeflate (PyPI `deflate`, which bundles it, so the wheel pins the bytes): its CPU-
specific code (CRC-32, the match finder's table set-up and rebasing) computes the same values
on every CPU, so the parse it chooses does not depend on the instruction set; and measured so
(docs/reproducibility.md, tests/engine/test_machines.py): one output on x86-64 without
SSE4.2, with SSE4.2, with AVX2, with AVX-512, and on arm64. isal's choices depend on the CPU
and, once in ~400 runs, on where its state lies in memory; the system zlib differs between
distributions.

Why a member per piece rather than one stream: a member's bytes depend on its piece alone, so
pieces compress on any number of threads with no dictionary hand-over, nothing about the
machine or the run can leak into the output, and a rebuild copies the members of pieces it
has compressed before (`Reusable`: one changed file in a 50 MB layer recompresses about one
MiB, not fifty). A member is copied only after decompressing it and comparing with the piece,
so what a rebuild writes is always byte for byte what compressing would have written. The
cost is about 4% in size against `pigz -6` at level 1 (docs/performance.md).
"""

from __future__ import annotations

import functools
import os
import struct
from typing import BinaryIO

from engine.codec import Members, Reusable, library_version
from engine.codec._pool import OrderedPool
from engine.codec.cut import RULE
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
    return f"gzip/libdeflate-members/{library_version('deflate')}/level={level}/{RULE}"


def summary(level: int) -> str:
    return f"gzip via libdeflate ({library_version('deflate')}), level {level}, a member per piece"


_TRAILER = struct.Struct("<II")


class _MemberWriter:
    def __init__(self, sink: BinaryIO, level: int, threads: int, reuse: Reusable | None) -> None:
        self._sink = sink
        self._level = level
        self._sizes: list[tuple[int, int, int]] = []
        self.members: Members | None = None
        self.reused = 0
        # (size, crc) -> (offset, length) of a member of the reusable blob
        self._old: dict[tuple[int, int], tuple[int, int]] = {}
        self._fd = -1
        if reuse is not None:
            try:
                self._fd = os.open(reuse.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                pass  # gone since: compress everything
            else:
                offset = 0
                for size, crc, length in reuse.members.sizes:
                    self._old.setdefault((size, crc), (offset, length))
                    offset += length
        self._identity = identity(level)
        self._pool = OrderedPool(threads, self._make, self._emit)

    def write(self, piece: bytes) -> int:
        self._pool.submit(piece)
        return len(piece)

    def _make(self, piece: bytes) -> tuple[bytes, int, int, bool]:
        """(member, piece size, crc, copied); on a worker thread."""
        import deflate

        crc = deflate.crc32(piece)
        found = self._old.get((len(piece), crc))
        if found is not None:
            copied = self._copy(piece, crc, *found)
            if copied is not None:
                return copied, len(piece), crc, True
        body = deflate.deflate_compress(piece, self._level)
        trailer = _TRAILER.pack(crc, len(piece) & 0xFFFFFFFF)
        return header(self._level) + body + trailer, len(piece), crc, False

    def _copy(self, piece: bytes, crc: int, offset: int, length: int) -> bytes | None:
        """The old member at `offset`, if it holds exactly `piece`, as this codec writes it."""
        import deflate

        try:
            old = os.pread(self._fd, length, offset)
            head, trailer = header(self._level), _TRAILER.pack(crc, len(piece) & 0xFFFFFFFF)
            if len(old) != length or old[:10] != head or old[-8:] != trailer:
                return None
            if deflate.deflate_decompress(old[10:-8], len(piece)) != piece:
                return None
        except (OSError, deflate.DeflateError):
            return None
        return old

    def _emit(self, made: tuple[bytes, int, int, bool]) -> None:
        data, size, crc, copied = made
        self._sink.write(data)
        self._sizes.append((size, crc, len(data)))
        if copied:
            self.reused += size

    def close(self) -> None:
        try:
            self._pool.finish()
        finally:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        self.members = Members(self._identity, tuple(self._sizes))


def open(sink: BinaryIO, level: int, threads: int, reuse: Reusable | None) -> _MemberWriter:
    return _MemberWriter(sink, level, threads, reuse)
