"""Reads a layer's tar stream header by header, keeping every byte-level fact a diff can name.

`tarfile` hides exactly what a "why did my digest change" explainer needs: which header format
an entry was written in (USTAR, GNU, v7, a PAX extended header and which records it carries),
the owner names, fractional PAX mtimes, the raw header bytes. So the headers are parsed here,
by hand, from a forward-only stream: each regular file's data is hashed as it passes and never
kept, PAX and GNU long-name payloads are bounded, and the whole stream is never in memory.
What is kept per entry is a small frozen record (TarEntry).
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, cast

import zstandard

from engine.errors import LayerReadError
from engine.events import CancelToken

BLOCK = 512
READ = 1 << 20
MAX_META = 1 << 20  # a PAX or GNU long-name payload larger than this is not a real header
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

_TYPES = {
    b"0": "file",
    b"\0": "file",
    b"7": "file",  # contiguous file: a regular file to every reader that matters
    b"1": "hardlink",
    b"2": "symlink",
    b"3": "char",
    b"4": "block",
    b"5": "dir",
    b"6": "fifo",
}
# PAX records that stand in for a header field; every other record is reported as is.
_PAX_FIELDS = ("path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime")


@dataclass(frozen=True)
class TarEntry:
    """One member as an unpacker would see it, plus how it was encoded.

    `path` has no leading '/' or './' and no trailing '/'. `digest` is the sha256 of a regular
    file's data ("" for other types). `format` is "ustar", "gnu" or "v7", with "+pax" when a
    PAX extended header preceded it and "+gnu-longname"/"+gnu-longlink" for GNU long names;
    `pax_keys` lists the keywords that extended header carried. `header` is the sha256 of the
    entry's raw header blocks (extended headers included), for differences no field explains.
    """

    path: str
    type: str
    mode: int
    uid: int
    gid: int
    uname: str
    gname: str
    size: int
    mtime: str  # as the archive states it: "0", "1700000000", or a PAX "1700000000.25"
    linkname: str
    devmajor: int
    devminor: int
    digest: str
    format: str
    pax_keys: tuple[str, ...]
    extra: tuple[tuple[str, str], ...]  # PAX records other than the header fields (xattrs…)
    header: str
    offset: int  # where the entry's first header block starts in the uncompressed stream


@dataclass(frozen=True)
class TarSummary:
    """What the stream held besides its entries: its size and what followed the end marker."""

    size: int
    end_offset: int  # where the end-of-archive zero blocks start (-1: no end marker)
    global_pax: tuple[tuple[str, str], ...]


def sniff_compression(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


@contextmanager
def decompressed(raw: BinaryIO) -> Iterator[IO[bytes]]:
    """`raw` (a layer blob at its start) as an uncompressed stream; compression from its first
    bytes, since a media type may be a Docker one or simply wrong."""
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(cast(Any, raw))
    kind = sniff_compression(buffered.peek(4)[:4])
    if kind == "gzip":
        from isal import igzip

        gzip_file: Any = igzip.IGzipFile  # isal's reader carries no annotations
        stream = cast("IO[bytes]", gzip_file(fileobj=buffered, mode="rb"))
    elif kind == "zstd":
        stream = cast(
            "IO[bytes]",
            zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True),
        )
    else:
        stream = cast("IO[bytes]", buffered)
    try:
        yield stream
    finally:
        if stream is not buffered:
            stream.close()


class _Reader:
    """Exact-size reads from a stream that may return short reads; counts the offset."""

    def __init__(self, stream: IO[bytes], cancel: CancelToken | None) -> None:
        self._stream = stream
        self._cancel = cancel
        self.offset = 0

    def read(self, n: int) -> bytes:
        parts: list[bytes] = []
        left = n
        while left:
            chunk = self._stream.read(min(left, READ))
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
        data = b"".join(parts)
        self.offset += len(data)
        return data

    def block(self) -> bytes:
        data = self.read(BLOCK)
        if data and len(data) < BLOCK:
            raise LayerReadError(f"truncated tar header at offset {self.offset - len(data)}")
        return data

    def hash_data(self, size: int) -> str:
        """Hash `size` bytes of member data and skip its padding, in bounded chunks."""
        h = hashlib.sha256()
        left = size
        while left:
            chunk = self._stream.read(min(left, READ))
            if not chunk:
                raise LayerReadError("truncated tar member data")
            h.update(chunk)
            left -= len(chunk)
            self.offset += len(chunk)
            if self._cancel is not None:
                self._cancel.check()
        self.skip(-size % BLOCK)
        return h.hexdigest()

    def skip(self, n: int) -> None:
        while n:
            chunk = self._stream.read(min(n, READ))
            if not chunk:
                raise LayerReadError("truncated tar member data")
            n -= len(chunk)
            self.offset += len(chunk)

    def drain(self) -> None:
        while chunk := self._stream.read(READ):
            self.offset += len(chunk)


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    """An octal field (NUL/space terminated), or GNU base-256 when the high bit is set."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return -value if field[0] & 0x40 else value
    digits = field.replace(b"\0", b" ").strip()
    if not digits:
        return 0
    try:
        return int(digits, 8)
    except ValueError:
        raise LayerReadError(f"invalid number {field!r} in a tar header") from None


def _pax_records(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise LayerReadError("malformed PAX record") from None
        if length <= 0:
            break
        record = data[space + 1 : pos + length]
        key, _, value = record.rstrip(b"\n").partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def normalize(name: str) -> str:
    """The path an unpacker writes: no leading './' or '/', no trailing '/'."""
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


def iter_tar(
    stream: IO[bytes], cancel: CancelToken | None = None, summary: list[TarSummary] | None = None
) -> Iterator[TarEntry]:
    """Every member of the uncompressed tar `stream`, in order. When `summary` is given, a
    TarSummary is appended to it once the stream is exhausted."""
    r = _Reader(stream, cancel)
    pax: dict[str, str] = {}
    global_pax: dict[str, str] = {}
    long_name: str | None = None
    long_link: str | None = None
    raw_headers = hashlib.sha256()
    start = -1
    end_offset = -1
    while True:
        if cancel is not None:
            cancel.check()
        at = r.offset
        block = r.block()
        if not block:
            break
        if block == b"\0" * BLOCK:
            end_offset = at
            break
        if start < 0:
            start = at
        raw_headers.update(block)
        typeflag = block[156:157]
        size = _number(block[124:136])
        if typeflag in (b"x", b"g", b"L", b"K"):
            if size > MAX_META:
                raise LayerReadError(f"tar extended header of {size} bytes at offset {at}")
            payload = r.read(size + (-size % BLOCK))
            if len(payload) < size:
                raise LayerReadError("truncated tar extended header")
            raw_headers.update(payload)
            body = payload[:size]
            if typeflag == b"x":
                pax.update(_pax_records(body))
            elif typeflag == b"g":
                global_pax.update(_pax_records(body))
            elif typeflag == b"L":
                long_name = body.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            else:
                long_link = body.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            continue
        magic, version = block[257:263], block[263:265]
        if magic == b"ustar\0":
            fmt = "ustar"
        elif magic == b"ustar " and version == b" \0":
            fmt = "gnu"
        else:
            fmt = "v7"
        name = _text(block[0:100])
        if fmt == "ustar":
            prefix = _text(block[345:500])
            if prefix:
                name = f"{prefix}/{name}"
        linkname = _text(block[157:257])
        if long_name is not None:
            name, fmt = long_name, fmt + "+gnu-longname"
        if long_link is not None:
            linkname, fmt = long_link, fmt + "+gnu-longlink"
        merged = {**global_pax, **pax}
        if pax:
            fmt += "+pax"
        name = merged.get("path", name)
        linkname = merged.get("linkpath", linkname)
        size = int(merged["size"]) if "size" in merged else size
        kind = _TYPES.get(typeflag, f"type {typeflag.decode('latin-1')!r}")
        digest = ""
        if kind == "file":
            digest = r.hash_data(size)
        elif typeflag not in _TYPES and size:
            # As tarfile reads it: data follows regular files and unknown types only; a link's
            # or a device's size field is not followed by data.
            r.skip(size + (-size % BLOCK))
        yield TarEntry(
            path=normalize(name),
            type=kind,
            mode=_number(block[100:108]) & 0o7777,
            uid=int(merged["uid"]) if "uid" in merged else _number(block[108:116]),
            gid=int(merged["gid"]) if "gid" in merged else _number(block[116:124]),
            uname=merged.get("uname", _text(block[265:297]) if fmt != "v7" else ""),
            gname=merged.get("gname", _text(block[297:329]) if fmt != "v7" else ""),
            size=size if kind == "file" else 0,
            mtime=merged.get("mtime", str(_number(block[136:148]))),
            linkname=linkname if kind in ("symlink", "hardlink") else "",
            devmajor=_number(block[329:337]) if kind in ("char", "block") else 0,
            devminor=_number(block[337:345]) if kind in ("char", "block") else 0,
            digest=digest,
            format=fmt,
            pax_keys=tuple(sorted(pax)),
            extra=tuple(sorted((k, v) for k, v in merged.items() if k not in _PAX_FIELDS)),
            header=raw_headers.hexdigest(),
            offset=start,
        )
        pax = {}
        long_name = long_link = None
        raw_headers = hashlib.sha256()
        start = -1
    r.drain()
    if summary is not None:
        summary.append(TarSummary(r.offset, end_offset, tuple(sorted(global_pax.items()))))


def read_layer(
    raw: BinaryIO, cancel: CancelToken | None = None
) -> tuple[list[TarEntry], TarSummary]:
    """Every entry of the layer blob `raw` (compressed or not) and the stream's summary."""
    summary: list[TarSummary] = []
    try:
        with decompressed(raw) as stream:
            entries = list(iter_tar(stream, cancel, summary))
    except (OSError, EOFError, ValueError, zlib.error, zstandard.ZstdError) as e:
        # isal, zlib and zstandard each raise their own types for a corrupt stream.
        raise LayerReadError(f"cannot read layer: {e}") from None
    return entries, summary[0]
