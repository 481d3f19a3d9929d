"""Knobs that must never change an image, and test-only faults that must.

Read here and nowhere else; the layer writer (engine/builder/layer.py) calls the three hook
functions below at the points they name. `vinci verify` sets the knobs to prove the contract
in docs/reproducibility.md; the faults exist so the test suite can prove that `vinci verify`
and `vinci diff` catch and explain a real non-determinism.

Perturbation knobs, honoured always (they are part of the contract: an image never depends on
them, so setting them is harmless):

    VINCI_READ_CHUNK=BYTES     how much of a source file the tar writer reads at a time
                               (default 1 MiB): the write sizes the compressor sees
    VINCI_CODEC_THREADS=N      compression threads (default: the CPU count, at most 4)

Test-only faults, honoured only when VINCI_TESTING=1 is ALSO set, so a stray variable in a
user's environment can never make an image non-reproducible. Documented for the test suite
only; no user-facing command sets them:

    VINCI_TEST_HOOKS=chunked-codec[,clock-in-layer]
      chunked-codec    gzip layers go through a writer that flushes after every write, so
                       the compressed bytes depend on the write sizes (the bug the codec's
                       cutter exists to prevent); the tar bytes, the diff_id, do not.
      clock-in-layer   every layer vinci writes ends with a file `.vinci-test-clock` holding
                       the wall-clock time, as its contents and as its mtime.
"""

from __future__ import annotations

import os
import time
import zlib
from typing import BinaryIO

from engine.codec import Codec, LayerCompressor, Members, Reusable
from engine.errors import VinciError
from engine.tar.format import REGULAR, TarHeader, encode_header, padding

READ_CHUNK_ENV = "VINCI_READ_CHUNK"
CODEC_THREADS_ENV = "VINCI_CODEC_THREADS"
TESTING_ENV = "VINCI_TESTING"
HOOKS_ENV = "VINCI_TEST_HOOKS"
FAULTS = ("chunked-codec", "clock-in-layer")
CLOCK_FILE = ".vinci-test-clock"


def _positive(name: str, limit: int) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise VinciError(f"{name}={text!r} is not a whole number") from None
    if not 1 <= value <= limit:
        raise VinciError(f"{name}={value} is out of range (1..{limit})")
    return value


def faults() -> frozenset[str]:
    """The test-only faults in force: none unless VINCI_TESTING=1 is set as well."""
    if os.environ.get(TESTING_ENV) != "1":
        return frozenset()
    names = {n.strip() for n in os.environ.get(HOOKS_ENV, "").split(",") if n.strip()}
    unknown = names - set(FAULTS)
    if unknown:
        raise VinciError(
            f"{HOOKS_ENV}: unknown hook {sorted(unknown)[0]!r} (known: {', '.join(FAULTS)})"
        )
    return frozenset(names)


# -- hook points (engine/builder/layer.py) --------------------------------------------------------


def read_chunk(default: int) -> int:
    """The read size for source files in the tar writer."""
    return _positive(READ_CHUNK_ENV, 1 << 30) or default


def open_codec(
    codec: Codec, sink: BinaryIO, threads: int, reuse: Reusable | None = None
) -> LayerCompressor | _FlushingGzip:
    """`codec.open(sink, threads, reuse)`, with the thread-count knob and the chunked-codec
    fault."""
    threads = _positive(CODEC_THREADS_ENV, 256) or threads
    if "chunked-codec" in faults() and codec.name in ("gzip", "gzip-zlib"):
        return _FlushingGzip(sink)
    return codec.open(sink, threads, reuse)


def trailer() -> bytes:
    """Bytes to write after a layer's last entry, before the end-of-archive blocks: nothing,
    unless the clock-in-layer fault is on."""
    if "clock-in-layer" not in faults():
        return b""
    now = time.time_ns()
    data = f"{now}\n".encode()
    header = TarHeader(
        name=CLOCK_FILE, type=REGULAR, mode=0o644, size=len(data), mtime=now // 10**9
    )
    return encode_header(header) + data + padding(len(data))


class _FlushingGzip:
    """A gzip writer whose output depends on how its input is cut: a sync flush after every
    write puts a block boundary wherever a write ends."""

    members: Members | None = None  # one stream: nothing a later build could copy
    reused = 0

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self._crc = 0
        self._size = 0
        self._z = zlib.compressobj(6, zlib.DEFLATED, -15, 9)
        sink.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")

    def write(self, data: bytes | memoryview) -> int:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._sink.write(self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH))
        return len(data)

    def close(self) -> None:
        self._sink.write(self._z.flush())
        self._sink.write(
            self._crc.to_bytes(4, "little") + (self._size & 0xFFFFFFFF).to_bytes(4, "little")
        )
