"""The files of a local image, whether a directory (OCI layout) or a tar (OCI archive,
docker-archive), behind one small interface.

A tar archive is indexed once by reading its headers through engine.tar.read, seeking over
member data, and a member is read in place (positioned reads of the archive), so a multi-GB
layer is streamed, never loaded or extracted. Member names are normalized (`./blobs/x` and
`blobs/x` are the same file); links inside the archive (old `docker save` output links
duplicate layers) are followed.

Every read is bounded, since the image may be hostile: what is read must be a regular file (a
FIFO, a device or a link to one is refused by name before anything blocks or streams for
ever), manifests, indexes and configs are read only up to SMALL_LIMIT, and `bounded` holds a
blob to the size its descriptor declares.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

from engine.errors import CorruptImportedImage, ImageImportError, LayerReadError
from engine.tar.read import TarEntry, TarReader
from engine.tar.read import normalize as normalize_member

# Manifests, indexes and configs: containerd refuses any larger than this, and so do we.
SMALL_LIMIT = 4 << 20
# What a member that cannot be read as a blob is, in words.
_MEMBER_KINDS = {
    "dir": "a directory",
    "char": "a character device",
    "block": "a block device",
    "fifo": "a FIFO",
    "type 'S'": "a GNU sparse file",
}
_MAX_LINKS = 40  # as the kernel's symlink limit: a loop of links is an error, not a hang


class ImageFiles(Protocol):
    where: str

    def exists(self, name: str) -> bool: ...

    def size(self, name: str) -> int: ...

    def open(self, name: str) -> BinaryIO: ...

    def close(self) -> None: ...


def read_small(files: ImageFiles, name: str) -> bytes:
    """A JSON file of the image, refused if larger than SMALL_LIMIT (even when its size lies,
    as a /proc file's does)."""
    if files.size(name) > SMALL_LIMIT:
        raise ImageImportError(
            f"{files.where}: {name} is larger than {SMALL_LIMIT >> 20} MiB, too large to be "
            "image metadata"
        )
    with files.open(name) as f:
        data = f.read(SMALL_LIMIT + 1)
    if len(data) > SMALL_LIMIT:
        raise ImageImportError(
            f"{files.where}: {name} is larger than {SMALL_LIMIT >> 20} MiB, too large to be "
            "image metadata"
        )
    return data


def normalize(name: str) -> str:
    out = posixpath.normpath(name.lstrip("/"))
    return "" if out == "." else out


def file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def open_regular(path: Path, what: str) -> BinaryIO:
    """`path` opened for reading if it is a regular file (through any symlinks); anything else
    is refused as `what`, before a FIFO can block the open or a device stream for ever."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise ImageImportError(f"{what} is {file_kind(mode)}, not a regular file")
        # O_NONBLOCK: if the path was swapped for a FIFO since the stat, the open still
        # returns, and the fstat below refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ImageImportError(f"{what} is missing") from None
    except OSError as e:
        raise ImageImportError(f"cannot read {what}: {e.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ImageImportError(f"{what} is {file_kind(mode)}, not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


class DirFiles:
    """An OCI image layout directory."""

    def __init__(self, root: Path, where: str) -> None:
        self.root = root
        self.where = where

    def _path(self, name: str) -> Path:
        clean = normalize(name)
        if clean.startswith("../") or clean == "..":
            raise ImageImportError(f"{self.where}: {name!r} points outside the image")
        return self.root / clean

    def exists(self, name: str) -> bool:
        # lexists: a blob that is a FIFO or a link to a device "exists", so reading it is
        # refused by name rather than reported missing.
        return os.path.lexists(self._path(name))

    def size(self, name: str) -> int:
        try:
            st = os.stat(self._path(name))
        except FileNotFoundError:
            raise ImageImportError(f"{self.where}: {name} is missing") from None
        if not stat.S_ISREG(st.st_mode):
            raise ImageImportError(
                f"{self.where}: {name} is {file_kind(st.st_mode)}, not a regular file"
            )
        return st.st_size

    def open(self, name: str) -> BinaryIO:
        return open_regular(self._path(name), f"{self.where}: {name}")

    def close(self) -> None:
        pass


class _Member(io.RawIOBase):
    """One archive member's data: positioned reads of the archive, so several members may be
    open at once (each has its own position)."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self._fd = fd
        self._offset = offset
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._size - self._pos)
        if n <= 0:
            return 0
        data = os.pread(self._fd, n, self._offset + self._pos)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


class TarFiles:
    """A tar archive; members stay in place and are streamed on demand."""

    def __init__(self, path: Path, where: str) -> None:
        self.where = where
        self._file = open_regular(path, where)
        # A later entry for a name wins, as on extraction.
        self._members: dict[str, TarEntry] = {}
        try:
            for e in TarReader(cast("io.BufferedReader", self._file), digests=False):
                self._members[e.path] = e
        except LayerReadError as e:
            self._file.close()
            raise ImageImportError(f"{where}: not a readable tar archive ({e})") from None
        except OSError as e:
            self._file.close()
            raise ImageImportError(f"{where}: cannot read it: {e.strerror}") from None

    def names(self) -> list[str]:
        return [n for n, e in self._members.items() if e.type in ("file", "symlink", "hardlink")]

    def _member(self, name: str) -> TarEntry:
        """The regular file `name` names, through the archive's links."""
        wanted = normalize_member(name)
        for _ in range(_MAX_LINKS):
            member = self._members.get(wanted)
            if member is None:
                raise ImageImportError(f"{self.where}: {name} is missing from the archive")
            if member.type == "symlink":
                base = posixpath.dirname(member.path)
                wanted = normalize_member(posixpath.join(base, member.linkname))
            elif member.type == "hardlink":
                wanted = normalize_member(member.linkname)
            elif member.type == "file":
                return member
            else:
                what = _MEMBER_KINDS.get(member.type, member.type)
                raise ImageImportError(
                    f"{self.where}: {name} in the archive is {what}, not a regular file"
                )
        raise ImageImportError(f"{self.where}: {name}: too many links in the archive")

    def exists(self, name: str) -> bool:
        return normalize_member(name) in self._members

    def size(self, name: str) -> int:
        return self._member(name).size

    def open(self, name: str) -> BinaryIO:
        member = self._member(name)
        raw = _Member(self._file.fileno(), member.data_offset, member.size)
        return cast(BinaryIO, io.BufferedReader(raw))

    def close(self) -> None:
        self._file.close()


class _Bounded(io.RawIOBase):
    """A blob read no further than its declared size: more is a CorruptImportedImage."""

    def __init__(self, raw: BinaryIO, size: int, what: str) -> None:
        self._raw = raw
        self._left = size
        self._size = size
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._left == 0:
            if self._raw.read(1):
                raise CorruptImportedImage(
                    f"corrupt imported image {self._what}: it is larger than the "
                    f"{self._size} bytes its descriptor says"
                )
            return 0
        data = self._raw.read(min(len(view), self._left))
        view[: len(data)] = data
        self._left -= len(data)
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def bounded(raw: BinaryIO, size: int, what: str) -> BinaryIO:
    """`raw`, refusing to read past `size` bytes (a blob's declared size)."""
    return cast(BinaryIO, io.BufferedReader(_Bounded(raw, size, what)))


def open_files(path: Path, where: str) -> DirFiles | TarFiles:
    if path.is_dir():
        return DirFiles(path, where)
    if not path.exists():
        raise ImageImportError(f"{where}: no such file or directory")
    return TarFiles(path, where)
