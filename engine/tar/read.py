"""The one tar reader: a layer's (or an archive's) tar stream, header by header, forward only.

`tarfile` hides exactly what a "why did my digest change" explainer needs: which header format
an entry was written in (USTAR, GNU, v7, a PAX extended header and which records it carries),
the owner names, fractional PAX mtimes, the raw header bytes. So the headers are parsed here,
by hand, and every caller reads through them: `vinci diff` and the lock (`read_layer`: each
file's data hashed as it passes), `vinci inspect` and the workbench's Contents pane
(`iter_layer`, `read_member`), and a local archive's index (`TarReader` with `digests=False`
over a seekable file: data is seeked over, its offset kept).

Bounds, since a layer or archive may be hostile: the whole stream is never in memory, data is
read in chunks of at most READ bytes, PAX and GNU long-name payloads are capped at MAX_META,
every header's checksum is verified, and a negative or malformed number is a LayerReadError
naming its offset, never an arithmetic error.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import IO, BinaryIO

from engine.cancel import CancelToken
from engine.errors import LayerReadError
from engine.tar.compression import DECODE_ERRORS, decompressed
from engine.tar.header import check_sum, number

BLOCK = 512
READ = 1 << 20
MAX_META = 1 << 20  # a PAX or GNU long-name payload larger than this is not a real header
DEFAULT_TEXT_LIMIT = 256 * 1024
_ZERO_BLOCK = b"\0" * BLOCK

TYPES = {
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

    `path` is the member's name as an unpacker resolves it, relative to the root: no leading
    '/' or './', no trailing '/', no '.' or '..' parts ("" is the root itself). `type` is file,
    dir, symlink, hardlink, char, block, fifo, or "type 'X'" for a type no unpacker knows.
    `size` is a regular file's data size (0 for every other type). `linkname` is a link's
    target as written. `digest` is the sha256 of a regular file's data ("" for other types,
    or when the reader was asked not to hash). `format` is "ustar", "gnu" or "v7", with "+pax"
    when a PAX extended header preceded it and "+gnu-longname"/"+gnu-longlink" for GNU long
    names; `pax_keys` lists the keywords that extended header carried. `header` is the sha256
    of the entry's raw header blocks (extended headers included), for differences no field
    explains. `offset` is where its first header block starts in the uncompressed stream,
    `data_offset` where its data starts.
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
    offset: int
    data_offset: int


@dataclass(frozen=True)
class TarSummary:
    """What the stream held besides its entries: its size and what followed the end marker."""

    size: int
    end_offset: int  # where the end-of-archive zero blocks start (-1: no end marker)
    global_pax: tuple[tuple[str, str], ...]


def normalize(name: str) -> str:
    """The path an unpacker writes, relative to the root: './etc/', '/etc' and 'etc' are 'etc'."""
    return posixpath.normpath("/" + name).lstrip("/")


class _Stream:
    """Exact-size reads from a stream that may return short reads; counts the offset, and
    skips by seeking when the stream can."""

    def __init__(self, stream: IO[bytes], cancel: CancelToken | None) -> None:
        self._stream = stream
        self._cancel = cancel
        self._seekable = _seekable(stream)
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

    def hash_data(self, size: int, tee: Callable[[bytes], object] | None = None) -> str:
        """Hash `size` bytes of member data and skip its padding, in bounded chunks, each
        chunk also handed to `tee` when given."""
        h = hashlib.sha256()
        left = size
        while left:
            chunk = self._stream.read(min(left, READ))
            if not chunk:
                raise LayerReadError("truncated tar member data")
            h.update(chunk)
            if tee is not None:
                tee(chunk)
            left -= len(chunk)
            self.offset += len(chunk)
            if self._cancel is not None:
                self._cancel.check()
        self.skip(-size % BLOCK)
        return h.hexdigest()

    def skip(self, n: int) -> None:
        if self._seekable and n > READ:
            end = self._stream.seek(0, io.SEEK_END)
            if self.offset + n > end:
                raise LayerReadError("truncated tar member data")
            self._stream.seek(self.offset + n)
            self.offset += n
            return
        while n:
            chunk = self._stream.read(min(n, READ))
            if not chunk:
                raise LayerReadError("truncated tar member data")
            n -= len(chunk)
            self.offset += len(chunk)
            if self._cancel is not None:
                self._cancel.check()

    def drain(self) -> None:
        if self._seekable:
            self.offset = self._stream.seek(0, io.SEEK_END)
            return
        while chunk := self._stream.read(READ):
            self.offset += len(chunk)


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return stream.seekable()
    except (AttributeError, OSError, ValueError):
        return False


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_number(records: dict[str, str], key: str, at: int) -> int | None:
    if key not in records:
        return None
    try:
        return int(records[key])
    except ValueError:
        raise LayerReadError(
            f"invalid PAX {key} {records[key]!r} in the tar header at offset {at}"
        ) from None


def _pax_records(data: bytes, at: int) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise LayerReadError(f"malformed PAX record in the tar header at offset {at}") from None
        if length <= 0:
            break
        record = data[space + 1 : pos + length]
        key, _, value = record.rstrip(b"\n").partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


class TarReader:
    """Iterating gives every member of the uncompressed tar `stream`, in order.

    With `digests` (the default) each regular file's data is hashed as it passes; `tee`, given
    an entry, may return a callable that also receives that file's data, chunk by chunk, as it
    is hashed (a reader of one file needs no second pass). Without `digests`, an
    entry is yielded before its data is read: `read_data` reads from it until the next entry
    is asked for, and what is left is skipped (seeked over, when the stream can). Once the
    iteration ends, `summary` describes the stream.
    """

    def __init__(
        self,
        stream: IO[bytes],
        cancel: CancelToken | None = None,
        *,
        digests: bool = True,
        tee: Callable[[TarEntry], Callable[[bytes], object] | None] | None = None,
    ) -> None:
        self._r = _Stream(stream, cancel)
        self._cancel = cancel
        self._digests = digests
        self._tee = tee
        self._left = 0  # data of the current member not yet read
        self.summary: TarSummary | None = None

    def read_data(self, n: int) -> bytes:
        """Up to `n` bytes of the current member's data (only when not hashing)."""
        data = self._r.read(min(n, self._left))
        if len(data) < min(n, self._left):
            raise LayerReadError("truncated tar member data")
        self._left -= len(data)
        return data

    def __iter__(self) -> Iterator[TarEntry]:
        r = self._r
        pax: dict[str, str] = {}
        global_pax: dict[str, str] = {}
        global_bytes = 0
        long_name: str | None = None
        long_link: str | None = None
        raw_headers = hashlib.sha256()
        start = -1
        end_offset = -1
        while True:
            if self._cancel is not None:
                self._cancel.check()
            at = r.offset
            block = r.block()
            if not block:
                break
            if block == _ZERO_BLOCK:
                end_offset = at
                break
            check_sum(block, at)
            if start < 0:
                start = at
            raw_headers.update(block)
            typeflag = block[156:157]
            size = number(block[124:136], at)
            if size < 0:
                raise LayerReadError(f"negative size {size} in the tar header at offset {at}")
            if typeflag in (b"x", b"g", b"L", b"K"):
                if size > MAX_META:
                    raise LayerReadError(f"tar extended header of {size} bytes at offset {at}")
                payload = r.read(size + (-size % BLOCK))
                if len(payload) < size:
                    raise LayerReadError(f"truncated tar extended header at offset {at}")
                raw_headers.update(payload)
                body = payload[:size]
                if typeflag == b"x":
                    pax.update(_pax_records(body, at))
                elif typeflag == b"g":
                    global_bytes += size
                    if global_bytes > MAX_META:
                        raise LayerReadError(f"too many global PAX headers (at offset {at})")
                    global_pax.update(_pax_records(body, at))
                elif typeflag == b"L":
                    long_name = body.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                else:
                    long_link = body.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                continue
            names = (long_name, long_link)
            header = raw_headers.hexdigest()
            entry = self._entry(block, at, start, typeflag, size, pax, global_pax, names, header)
            data = entry.size if entry.type == "file" else 0
            if entry.type not in TYPES.values() and size:
                # As tarfile reads it: data follows regular files and unknown types only; a
                # link's or a device's size field is not followed by data.
                data = size
            if self._digests and entry.type == "file":
                tee = self._tee(entry) if self._tee is not None else None
                yield replace(entry, digest=r.hash_data(data, tee))
            else:
                self._left = data
                yield entry
                r.skip(self._left + (-data % BLOCK))
                self._left = 0
            pax = {}
            long_name = long_link = None
            raw_headers = hashlib.sha256()
            start = -1
        r.drain()
        self.summary = TarSummary(r.offset, end_offset, tuple(sorted(global_pax.items())))

    def _entry(
        self,
        block: bytes,
        at: int,
        start: int,
        typeflag: bytes,
        size: int,
        pax: dict[str, str],
        global_pax: dict[str, str],
        long_names: tuple[str | None, str | None],
        header: str,
    ) -> TarEntry:
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
        long_name, long_link = long_names
        if long_name is not None:
            name, fmt = long_name, fmt + "+gnu-longname"
        if long_link is not None:
            linkname, fmt = long_link, fmt + "+gnu-longlink"
        merged = {**global_pax, **pax}
        if pax:
            fmt += "+pax"
        name = merged.get("path", name)
        linkname = merged.get("linkpath", linkname)
        pax_size = _pax_number(merged, "size", at)
        if pax_size is not None:
            if pax_size < 0:
                raise LayerReadError(f"negative size {pax_size} in the tar header at offset {at}")
            size = pax_size
        kind = TYPES.get(typeflag, f"type {typeflag.decode('latin-1')!r}")
        if typeflag == b"\0" and name.endswith("/"):
            kind = "dir"  # a pre-POSIX writer's directory, as every unpacker reads it
        uid = _pax_number(merged, "uid", at)
        gid = _pax_number(merged, "gid", at)
        device = kind in ("char", "block")
        return TarEntry(
            path=normalize(name),
            type=kind,
            mode=number(block[100:108], at) & 0o7777,
            uid=uid if uid is not None else number(block[108:116], at),
            gid=gid if gid is not None else number(block[116:124], at),
            uname=merged.get("uname", _text(block[265:297]) if fmt != "v7" else ""),
            gname=merged.get("gname", _text(block[297:329]) if fmt != "v7" else ""),
            size=size if kind == "file" or kind not in TYPES.values() else 0,
            mtime=merged.get("mtime", str(number(block[136:148], at))),
            linkname=linkname if kind in ("symlink", "hardlink") else "",
            devmajor=number(block[329:337], at) if device else 0,
            devminor=number(block[337:345], at) if device else 0,
            digest="",
            format=fmt,
            pax_keys=tuple(sorted(pax)),
            extra=tuple(sorted((k, v) for k, v in merged.items() if k not in _PAX_FIELDS)),
            header=header,
            offset=start,
            data_offset=self._r.offset,
        )


_READ_ERRORS: tuple[type[Exception], ...] = (*DECODE_ERRORS, OSError, ValueError)


@contextmanager
def _layer_errors() -> Iterator[None]:
    """A blob that is not a (compressed) tar stream, whichever library notices: one error."""
    try:
        yield
    except _READ_ERRORS as e:
        raise LayerReadError(f"cannot read layer: {e}") from None


def read_layer(
    raw: BinaryIO, cancel: CancelToken | None = None
) -> tuple[list[TarEntry], TarSummary]:
    """Every entry of the layer blob `raw` (compressed or not), its files hashed, and the
    stream's summary."""
    with _layer_errors(), decompressed(raw) as stream:
        reader = TarReader(stream, cancel)
        entries = list(reader)
    assert reader.summary is not None
    return entries, reader.summary


def iter_layer(raw: BinaryIO, cancel: CancelToken | None = None) -> Iterator[TarEntry]:
    """Every entry of the layer blob `raw`, in tar order, without hashing file data."""
    with _layer_errors(), decompressed(raw) as stream:
        yield from TarReader(stream, cancel, digests=False)


def iter_hashed(
    raw: BinaryIO,
    cancel: CancelToken | None = None,
    tee: Callable[[TarEntry], Callable[[bytes], object] | None] | None = None,
) -> Iterator[TarEntry]:
    """Every entry of the layer blob `raw`, in tar order, each regular file's data hashed
    (and handed to what `tee` returns for it, if anything) as it streams past."""
    with _layer_errors(), decompressed(raw) as stream:
        yield from TarReader(stream, cancel, tee=tee)


def head_problem(raw: BinaryIO) -> str | None:
    """Why `raw` (a host file at its start) is not a tar archive, plain or compressed, judged
    from its first header alone; None if that header reads. A whole rootfs is not read to
    validate a spec: a fault further in is reported by the build, at the layer."""
    try:
        with decompressed(raw) as stream:
            next(iter(TarReader(stream, digests=False)), None)
    except LayerReadError as e:
        return str(e)
    except _READ_ERRORS as e:
        return f"cannot be decompressed ({e})"
    return None


@dataclass(frozen=True)
class FileContent:
    """The first `limit` bytes of one member, and what they are."""

    entry: TarEntry
    data: bytes
    truncated: bool
    binary: bool

    @property
    def text(self) -> str:
        return "" if self.binary else self.data.decode("utf-8", "replace")


def looks_binary(data: bytes, truncated: bool) -> bool:
    if b"\0" in data:
        return True
    # A cut may fall inside a multi-byte character; only the bytes before it must decode.
    body = data[:-3] if truncated and len(data) > 3 else data
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def read_member(
    raw: BinaryIO,
    path: str,
    limit: int = DEFAULT_TEXT_LIMIT,
    cancel: CancelToken | None = None,
) -> FileContent | None:
    """The first `limit` bytes of the member at `path` in the layer blob `raw`, or None if
    there is none. Later members with the same path win, as they do when a layer is unpacked."""
    return read_members(raw, (path,), limit, cancel).get(normalize(path))


def read_members(
    raw: BinaryIO,
    paths: Iterable[str],
    limit: int = DEFAULT_TEXT_LIMIT,
    cancel: CancelToken | None = None,
) -> dict[str, FileContent]:
    """The first `limit` bytes of each member at one of `paths`, by normalized path, in one
    pass over the layer blob `raw`; a path the layer lacks is missing from the answer."""
    wanted = {normalize(p) for p in paths}
    found: dict[str, FileContent] = {}
    with _layer_errors(), decompressed(raw) as stream:
        reader = TarReader(stream, cancel, digests=False)
        for entry in reader:
            if entry.path not in wanted:
                continue
            data = reader.read_data(limit) if entry.type == "file" else b""
            truncated = entry.size > len(data)
            found[entry.path] = FileContent(entry, data, truncated, looks_binary(data, truncated))
    return found
