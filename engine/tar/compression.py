"""The one place a layer's compression is recognised and undone: gzip, zstd, xz or none.

The compression of a blob is taken from its first bytes, never from its media type alone: an
imported layer's media type may be a Docker one, or wrong. Two shapes of the same decoders:

- `decompressed(raw)`: a pull stream over a blob, for readers (`vinci diff`, `inspect`, the
  lock's diff_id check);
- `inflater(kind, out)`: a push decoder fed bytes as they arrive (an import, a pull), writing
  what it inflates to `out`.

gzip is inflated by isal (zlib's interface and bytes, about 2.4 times the speed) through one
`_GzipMembers` for both shapes: every member of a multi-member stream is read (pigz and
concatenated streams make them), zero padding after the last member is allowed, anything else
after it is an error. Output is produced in bounded pieces, so a small compressed chunk that
inflates enormously never lands in memory at once.

xz is no layer compression any image format names, but rootfs tarballs come as `.tar.xz` (a
`tar` layer reads them here, engine/builder/tarlayer.py); the stdlib's lzma undoes it, with
every stream of a concatenated file read, as for gzip.
"""

from __future__ import annotations

import io
import lzma
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, BinaryIO, Protocol, cast

import zstandard
from isal import isal_zlib

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
XZ_MAGIC = b"\xfd7zXZ\x00"
SNIFF_BYTES = len(XZ_MAGIC)  # enough to tell every kind apart
OUT_CHUNK = 1 << 20  # at most this much inflated output per step
_IN_CHUNK = 256 << 10

# What a broken stream raises: isal inflates gzip; zlib.error is what we raise ourselves.
# (isal's stubs declare `error` as an instance; it is the class IsalError.)
DECODE_ERRORS: tuple[type[Exception], ...] = (
    zlib.error,
    cast("type[Exception]", isal_zlib.error),
    zstandard.ZstdError,
    lzma.LZMAError,
    EOFError,
)


def sniff_compression(head: bytes) -> str:
    """'gzip', 'zstd', 'xz' or 'none', from a blob's first SNIFF_BYTES bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(XZ_MAGIC):
        return "xz"
    return "none"


class _GzipMembers:
    """Inflates a gzip stream of one or more members: `feed` input, `take` output.

    After a member ends, what follows is the next member, zero padding (some writers pad), or
    an error."""

    def __init__(self) -> None:
        self._d: Any = isal_zlib.decompressobj(31)
        self._input = b""  # fed and not yet inflated
        self._between = b""  # after a member's end: the start of the next, or padding

    def feed(self, data: bytes) -> None:
        self._input = self._input + data if self._input else data

    def take(self, limit: int = OUT_CHUNK) -> bytes:
        """Up to `limit` inflated bytes; b"" when more input is needed."""
        while True:
            if self._d is None:
                self._between += self._input
                self._input = b""
                if len(self._between) < len(GZIP_MAGIC):
                    return b""
                if self._between.startswith(GZIP_MAGIC):
                    self._input, self._between = self._between, b""
                    self._d = isal_zlib.decompressobj(31)
                    continue
                if self._between.strip(b"\0"):
                    raise zlib.error("data after the end of the gzip stream")
                self._between = b""
                return b""
            if not self._input:
                return b""
            out = self._d.decompress(self._input, limit)
            self._input = self._d.unconsumed_tail
            if self._d.eof:
                self._input = self._d.unused_data + self._input
                self._d = None
            if out:
                return bytes(out)

    def end(self) -> bytes:
        """The last output; raises if the stream stops inside a member."""
        if self._d is None:
            return b""
        out = bytes(self._d.flush())
        if not self._d.eof:
            raise zlib.error("the gzip stream ends early")
        return out


class _GzipReader(io.RawIOBase):
    """A readable over a gzip blob, every member of it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._members = _GzipMembers()
        self._ready = b""  # inflated, not yet read
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._ready:
            self._ready = self._members.take(min(len(view), OUT_CHUNK))
            if self._ready or self._ended:
                break
            data = self._raw.read(_IN_CHUNK)
            if data:
                self._members.feed(data)
            else:
                self._ended = True
                self._ready = self._members.end()
        n = min(len(view), len(self._ready))
        view[:n] = self._ready[:n]
        self._ready = self._ready[n:]
        return n


@contextmanager
def decompressed(raw: BinaryIO) -> Iterator[IO[bytes]]:
    """`raw` (a layer blob at its start) as an uncompressed stream, the compression taken from
    its first bytes."""
    # peek() needs a buffered reader; any readable binary stream can be wrapped in one.
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(cast(Any, raw))
    kind = sniff_compression(buffered.peek(SNIFF_BYTES)[:SNIFF_BYTES])
    if kind == "gzip":
        stream = cast("IO[bytes]", io.BufferedReader(_GzipReader(buffered), OUT_CHUNK))
    elif kind == "zstd":
        stream = cast(
            "IO[bytes]",
            zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True),
        )
    elif kind == "xz":
        # LZMAFile decodes in bounded steps and reads every concatenated stream.
        xz = lzma.LZMAFile(buffered)  # noqa: SIM115 - closed with the reader over it
        stream = cast("IO[bytes]", io.BufferedReader(xz, OUT_CHUNK))
    else:
        stream = cast("IO[bytes]", buffered)
    try:
        yield stream
    finally:
        if stream is not buffered:
            stream.close()


class Inflater(Protocol):
    """A push decoder: `write` compressed bytes as they come, `close` at the end (raises one of
    DECODE_ERRORS if the stream is broken or cut short)."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class _GzipInflater:
    def __init__(self, out: Callable[[bytes], object]) -> None:
        self._out = out
        self._members = _GzipMembers()

    def write(self, data: bytes) -> None:
        self._members.feed(data)
        while chunk := self._members.take():
            self._out(chunk)

    def close(self) -> None:
        if rest := self._members.end():
            self._out(rest)


class _Sink:
    """The writable zstandard's stream writer writes into."""

    def __init__(self, out: Callable[[bytes], object]) -> None:
        self.write = out


class _ZstdInflater:
    def __init__(self, out: Callable[[bytes], object]) -> None:
        target: Any = _Sink(out)  # zstandard only ever calls write() on it
        self._writer: Any = zstandard.ZstdDecompressor().stream_writer(
            target, write_size=OUT_CHUNK, closefd=False
        )

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    def close(self) -> None:
        self._writer.flush()


def inflater(kind: str, out: Callable[[bytes], object]) -> Inflater | None:
    """A push decoder for `kind` ("gzip" or "zstd") writing to `out`; None for "none" (and
    for "xz", which no image's layers use: such a blob's bytes are taken as they are)."""
    if kind == "gzip":
        return _GzipInflater(out)
    if kind == "zstd":
        return _ZstdInflater(out)
    return None
