"""Where a layer's compressed stream is cut into independent pieces: chosen by the tar entries
themselves, so an edit to one file leaves every other piece's bytes as they were.

Every codec takes a layer in pieces, so that its output depends on the bytes alone and not on
how the tar writer happened to write them; the default makes each piece a gzip member that
depends on that piece alone. Fixed-size pieces (every 1 MiB of the stream) would be reproducible,
but a file that grows by one byte would shift every piece after it, and a rebuild could reuse
none of them. So the cutter reads the tar headers as the stream goes by and cuts only:

- before a header, when the piece holds at least MIN bytes and the header's CRC-32 falls below
  a threshold proportional to the entry's size (CHANCE_BYTES: on average one cut per that many
  bytes of entries, whatever the mix of file sizes), or when the piece has reached MAX bytes;
- inside an entry's data, every CHUNK bytes counted from the start of that data, so a large
  file is cut at the same places wherever it lies in the stream.

A header's CRC covers its name, size, mode, owner and the fixed mtime, never its position, so
the cuts around an unchanged entry stay where they were. Anything that does not parse as a tar
header (a stream that is not a tar, a block whose checksum is wrong) ends the reading of headers:
from there the stream is cut every CHUNK bytes, which for a non-tar input is exactly the fixed
blocks of earlier versions. The cuts are a function of the bytes alone: never of how they are
fed, of the thread count, of the machine.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from engine.tar.header import header_data_size

# Part of every block codec's identity: changing any of these changes the bytes of layers.
CHUNK = 1 << 20
MIN = 256 << 10
MAX = 4 << 20
CHANCE_BYTES = 1 << 20
# No piece is longer: a piece grows past MAX only by one header and at most CHUNK of data.
MAX_PIECE = MAX + 512 + CHUNK
RULE = f"tar-cut={CHUNK >> 20}m,{MIN >> 10}k,{MAX >> 20}m,{CHANCE_BYTES >> 20}m"  # in that order

_BLOCK = 512
_HEADER, _DATA = 0, 1


class TarCutter:
    """Takes a tar stream in writes of any size and hands `emit` one piece at a time.

    A piece is gathered as a list of parts: slices of the `bytes` written (immutable, so kept
    by reference) or copies of anything mutable, joined once when the piece is cut. A piece
    that is one whole write (a CHUNK of a large file, as the layer writer reads them) is
    passed on as it is, without a copy."""

    def __init__(self, emit: Callable[[bytes], None]) -> None:
        self._emit = emit
        self._parts: list[bytes | memoryview] = []  # the piece being gathered
        self._held = 0  # its length
        self._at = 0  # stream offset of the next byte to arrive
        self._next = 0  # stream offset of the next header or data cut
        self._kind = _HEADER
        self._data_end = 0  # for _DATA: where the current entry's padded data ends
        self._header = bytearray()  # a header block arriving in parts
        self._tar = True  # still reading headers
        self.pieces = 0

    def write(self, data: bytes | memoryview) -> int:
        n = len(data)
        whole = type(data) is bytes
        view = memoryview(data)
        off = 0
        while off < n:
            if self._at < self._next:
                take = min(self._next - self._at, n - off)
                if take == n:
                    self._parts.append(data if whole else bytes(data))
                elif whole:
                    self._parts.append(view[off : off + take])
                else:
                    self._parts.append(bytes(view[off : off + take]))
                self._held += take
                self._at += take
                off += take
            elif self._kind == _DATA:
                self._cut_data()
            elif not self._header and n - off >= _BLOCK:
                # A header starts here, whole in this write (as the tar writer writes them).
                self._on_header(bytes(view[off : off + _BLOCK]))
                off += _BLOCK
            else:
                # A header arriving in parts: its 512 bytes are gathered before deciding.
                take = min(_BLOCK - len(self._header), n - off)
                self._header += view[off : off + take]
                off += take
                if len(self._header) == _BLOCK:
                    header = bytes(self._header)
                    self._header.clear()
                    self._on_header(header)
        return n

    def close(self) -> None:
        if self._header:
            self._parts.append(bytes(self._header))
            self._held += len(self._header)
            self._header.clear()
        if self._held or not self.pieces:
            self._flush()

    def _flush(self) -> None:
        parts = self._parts
        piece = parts[0] if len(parts) == 1 and type(parts[0]) is bytes else b"".join(parts)
        self._parts = []
        self._held = 0
        self.pieces += 1
        self._emit(piece)

    def _cut_data(self) -> None:
        """At a CHUNK boundary inside an entry's data (or of a stream that is not a tar)."""
        if self._held:
            self._flush()
        if not self._tar or self._next + CHUNK < self._data_end:
            self._next += CHUNK
        else:
            self._next, self._kind = self._data_end, _HEADER

    def _on_header(self, header: bytes) -> None:
        """A 512-byte block where a header should start: cut before it or not, and find
        where the next one starts."""
        start = self._at
        self._at += _BLOCK
        size = header_data_size(header) if self._tar else None
        if size is None:
            # Not a tar (any more): fixed cuts from here on, this block the first bytes.
            self._tar = False
            if self._held:
                self._flush()
            self._parts.append(header)
            self._held = _BLOCK
            self._next, self._kind = start + CHUNK, _DATA
            return
        padded = size + (-size % _BLOCK)
        held = self._held
        if held >= MAX or (
            held >= MIN
            and zlib.crc32(header) < min(1 << 32, ((_BLOCK + padded) << 32) // CHANCE_BYTES)
        ):
            self._flush()
        self._parts.append(header)
        self._held += _BLOCK
        self._data_end = self._at + padded
        if padded > CHUNK:
            self._next, self._kind = self._at + CHUNK, _DATA
        else:
            self._next, self._kind = self._data_end, _HEADER
