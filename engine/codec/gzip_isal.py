"""`gzip-isal`: gzip through isal, opt-in for fleets of one CPU class that want speed.

Same bytes on one CPU class only. isal's deflate picks its parse with code written per
instruction set: levels 0-2 give other bytes without SSE4.2, level 3 differs between AVX2 and
AVX-512, and arm64 has an implementation of its own (docs/reproducibility.md). Within one
class the bytes are fixed, by the construction below.

The stream is pigz's layout, byte for byte what isal.igzip_threaded writes for the same
blocks, except for the first: each block deflated with the previous block's last 32 KiB as
its dictionary and sync-flushed, the CRCs combined, one gzip member for the whole layer.

The first block has no history, and isal 1.9.1 deflates a block without history into a
stream that depends on where its state lies in memory: its x86-64 level 1-2 body, at
`.write_first_byte`, hashes the register holding the state's address instead of the data
(about one heap placement in 400 gives another parse). So the first byte is never deflated
without history: it goes out as a 1-byte, non-final stored block, and the rest of the block
is deflated with that byte as its dictionary. Every deflate call then has history, a path
that never varied (1 output over 32,768 heap placements).
"""

from __future__ import annotations

import struct
import threading
from typing import Any, BinaryIO

from engine.codec import Members, Reusable, library_version
from engine.codec._pool import OrderedPool
from engine.codec.cut import MAX_PIECE, RULE
from engine.oci import mediatypes

NAME = "gzip-isal"
MEDIA_TYPE = mediatypes.OCI_LAYER_GZIP
PORTABLE = False
LEVELS: range | None = range(0, 4)
DEFAULT_LEVEL = 2

HISTORY = 1 << 15  # deflate's window: each block's dictionary is its predecessor's tail
# A non-final stored block of one byte: BFINAL 0 and BTYPE 00 (padded to a byte), then LEN 1
# and NLEN, its complement, both little-endian; the byte itself follows.
STORED_ONE = b"\x00\x01\x00\xfe\xff"


def identity(level: int) -> str:
    return (
        f"gzip-isal/isal-pigz-layout/{library_version('isal')}/level={level}"
        f"/{RULE}/first-byte-stored"
    )


def summary(level: int) -> str:
    return f"gzip via isal {library_version('isal')}, level {level} (same bytes on one CPU class)"


class _IsalGzip:
    members: Members | None = None  # one stream: nothing a later build could copy
    reused = 0

    def __init__(self, sink: BinaryIO, level: int, threads: int) -> None:
        from isal import isal_zlib

        self._isal = isal_zlib
        self._sink = sink
        self._level = level
        # As isal's writer sizes it: deflate may grow incompressible data a little (level 0,
        # one fixed Huffman table, by more).
        self._out_size = (
            2 * MAX_PIECE + 500 if level == 0 else MAX_PIECE + max(MAX_PIECE // 10, 500)
        )
        self._local = threading.local()
        self._pool = OrderedPool(threads, self._compress, self._emit)
        self._previous: bytes | None = None
        self._crc = 0
        self._size = 0
        # isal's header: no name, mtime 0, then 0xff and the XFL byte, in that order.
        sink.write(struct.pack("<BBBBIBB", 0x1F, 0x8B, 8, 0, 0, 0xFF, 4 if level == 0 else 0))

    def write(self, block: bytes) -> int:
        if len(block) > MAX_PIECE:
            raise ValueError("pieces come from the cutter, at most MAX_PIECE each")
        if not block:
            return 0
        previous, self._previous = self._previous, block
        self._pool.submit(block, previous)
        return len(block)

    def _compressor(self) -> Any:
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = self._local.compressor = self._isal._ParallelCompress(
                buffersize=self._out_size, level=self._level
            )
        return compressor

    def _compress(self, block: bytes, previous: bytes | None) -> tuple[bytes, int, int]:
        if previous is not None:
            out, crc = self._compressor().compress_and_crc(block, memoryview(previous)[-HISTORY:])
            return out, crc, len(block)
        head, rest = block[:1], block[1:]
        body, crc_rest = self._compressor().compress_and_crc(rest, memoryview(head))
        crc = self._isal.crc32_combine(self._isal.crc32(head), crc_rest, len(rest))
        return STORED_ONE + head + body, crc, len(block)

    def _emit(self, result: tuple[bytes, int, int]) -> None:
        out, crc, n = result
        self._crc = self._isal.crc32_combine(self._crc, crc, n)
        self._size += n
        self._sink.write(out)

    def close(self) -> None:
        self._pool.finish()
        self._sink.write(self._isal.compress(b"", wbits=-15))
        self._sink.write(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))


def open(sink: BinaryIO, level: int, threads: int, reuse: Reusable | None) -> _IsalGzip:
    return _IsalGzip(sink, level, threads)
