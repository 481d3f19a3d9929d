"""Lists the entries of a layer blob, streaming: decompress, read tar headers, skip the data.

A layer may be gigabytes, so nothing here holds more than a read buffer of it: the blob is
decompressed as a stream (gzip through isal, zstd through zstandard, or read as is) and
`tarfile` in stream mode walks the headers, skipping each member's data as it goes. The
compression is taken from the blob's first bytes, not from its media type: an imported
layer's media type may be a Docker one, or wrong.

Reading one file's contents walks the same stream up to that member and keeps at most
`limit` bytes of it.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, cast

from engine.errors import CacheError
from engine.events import CancelToken

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
DEFAULT_TEXT_LIMIT = 256 * 1024


@dataclass(frozen=True)
class TarEntry:
    """One tar member. `path` is absolute in the image ("/etc/hello"; "/" for the root)."""

    path: str
    type: str  # file | dir | symlink | hardlink | char | block | fifo | whiteout | opaque
    mode: int
    uid: int
    gid: int
    size: int
    target: str  # link target for symlinks and hardlinks, "" otherwise


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


def sniff_compression(head: bytes) -> str:
    """'gzip', 'zstd' or 'none', from a blob's first four bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def normalize_path(name: str) -> str:
    """A tar member name as an absolute image path: './etc/' and 'etc' both become '/etc'."""
    cleaned = posixpath.normpath("/" + name.lstrip("/"))
    # normpath keeps a leading '//' (POSIX allows it to mean something else); we do not.
    return "/" + cleaned.lstrip("/")


def _type(info: tarfile.TarInfo, path: str) -> str:
    base = posixpath.basename(path)
    if base == OPAQUE_WHITEOUT:
        return "opaque"
    if base.startswith(WHITEOUT_PREFIX):
        return "whiteout"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    if info.ischr():
        return "char"
    if info.isblk():
        return "block"
    if info.isfifo():
        return "fifo"
    return "file"


def _entry(info: tarfile.TarInfo) -> TarEntry:
    path = normalize_path(info.name)
    kind = _type(info, path)
    target = info.linkname if kind in ("symlink", "hardlink") else ""
    if kind == "hardlink":
        target = normalize_path(target)
    return TarEntry(
        path=path,
        type=kind,
        mode=info.mode & 0o7777,
        uid=info.uid,
        gid=info.gid,
        size=info.size if kind == "file" else 0,
        target=target,
    )


@contextmanager
def decompressed(raw: BinaryIO) -> Iterator[IO[bytes]]:
    """`raw` (a layer blob, positioned at its start) as an uncompressed stream."""
    # peek() needs a buffered reader; any readable binary stream can be wrapped in one.
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(cast(Any, raw))
    compression = sniff_compression(buffered.peek(4)[:4])
    if compression == "gzip":
        from isal import igzip

        gzip_file: Any = igzip.IGzipFile  # isal's reader carries no annotations
        stream = cast("IO[bytes]", gzip_file(fileobj=buffered, mode="rb"))
        try:
            yield stream
        finally:
            stream.close()
    elif compression == "zstd":
        import zstandard

        reader = cast(
            "IO[bytes]",
            zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True),
        )
        try:
            yield reader
        finally:
            reader.close()
    else:
        yield buffered


@contextmanager
def _open_tar(raw: BinaryIO) -> Iterator[tarfile.TarFile]:
    with decompressed(raw) as stream:
        try:
            # "r|": a forward-only stream; members' data is skipped by reading, never seeked.
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                yield tar
        except (tarfile.TarError, EOFError, OSError, ValueError) as e:
            raise CacheError(f"cannot read layer: {e}") from None


def iter_entries(raw: BinaryIO, cancel: CancelToken | None = None) -> Iterator[TarEntry]:
    """Every member of the layer in `raw`, in tar order."""
    with _open_tar(raw) as tar:
        try:
            for info in tar:
                if cancel is not None:
                    cancel.check()
                yield _entry(info)
        except (tarfile.TarError, EOFError, OSError, ValueError) as e:
            raise CacheError(f"cannot read layer: {e}") from None


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
    """The first `limit` bytes of the member at `path` (absolute), or None if there is none.

    Later members with the same path win, as they would when the layer is unpacked.
    """
    wanted = normalize_path(path)
    found: FileContent | None = None
    with _open_tar(raw) as tar:
        try:
            for info in tar:
                if cancel is not None:
                    cancel.check()
                if normalize_path(info.name) != wanted:
                    continue
                entry = _entry(info)
                data = b""
                if entry.type == "file":
                    member = tar.extractfile(info)
                    if member is not None:
                        data = member.read(limit)
                truncated = entry.size > len(data)
                found = FileContent(entry, data, truncated, looks_binary(data, truncated))
        except (tarfile.TarError, EOFError, OSError, ValueError) as e:
            raise CacheError(f"cannot read layer: {e}") from None
    return found
