"""The files of a local image, whether a directory (OCI layout) or a tar (OCI archive,
docker-archive), behind one small interface.

Tar archives are indexed by reading their headers only (tarfile seeks over member data), and a
member is read in place through `extractfile`, so a multi-GB layer is streamed, never loaded or
extracted. Member names are normalized (`./blobs/x` and `blobs/x` are the same file); links
inside the archive (old `docker save` output links duplicate layers) are followed by tarfile.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from pathlib import Path
from typing import BinaryIO, Protocol, cast

from engine.errors import ImageImportError

SMALL_LIMIT = 16 << 20  # manifests, indexes and configs are far below this


class ImageFiles(Protocol):
    where: str

    def exists(self, name: str) -> bool: ...

    def size(self, name: str) -> int: ...

    def open(self, name: str) -> BinaryIO: ...

    def close(self) -> None: ...


def read_small(files: ImageFiles, name: str) -> bytes:
    """A JSON file of the image, refused if implausibly large for one."""
    if files.size(name) > SMALL_LIMIT:
        raise ImageImportError(f"{files.where}: {name} is too large to be image metadata")
    with files.open(name) as f:
        return f.read()


def normalize(name: str) -> str:
    out = posixpath.normpath(name.lstrip("/"))
    return "" if out == "." else out


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
        return self._path(name).is_file()

    def size(self, name: str) -> int:
        try:
            return os.stat(self._path(name)).st_size
        except FileNotFoundError:
            raise ImageImportError(f"{self.where}: {name} is missing") from None

    def open(self, name: str) -> BinaryIO:
        try:
            return open(self._path(name), "rb")
        except FileNotFoundError:
            raise ImageImportError(f"{self.where}: {name} is missing") from None
        except OSError as e:
            raise ImageImportError(f"{self.where}: cannot read {name}: {e.strerror}") from None

    def close(self) -> None:
        pass


class TarFiles:
    """A tar archive; members stay in place and are streamed on demand."""

    def __init__(self, path: Path, where: str) -> None:
        self.where = where
        try:
            self._tar = tarfile.open(path, mode="r:")  # noqa: SIM115 (closed by close())
            members = self._tar.getmembers()
        except (tarfile.TarError, OSError) as e:
            raise ImageImportError(f"{where}: not a readable tar archive ({e})") from None
        self._members: dict[str, tarfile.TarInfo] = {}
        for m in members:
            if m.isfile() or m.issym() or m.islnk():
                self._members[normalize(m.name)] = m  # a later entry wins, as on extraction

    def names(self) -> list[str]:
        return list(self._members)

    def _member(self, name: str) -> tarfile.TarInfo:
        member = self._members.get(normalize(name))
        if member is None:
            raise ImageImportError(f"{self.where}: {name} is missing from the archive")
        return member

    def exists(self, name: str) -> bool:
        return normalize(name) in self._members

    def size(self, name: str) -> int:
        member = self._member(name)
        if member.issym() or member.islnk():
            with self.open(name) as f:
                f.seek(0, os.SEEK_END)
                return f.tell()
        return member.size

    def open(self, name: str) -> BinaryIO:
        try:
            stream = self._tar.extractfile(self._member(name))
        except (KeyError, tarfile.TarError) as e:
            raise ImageImportError(f"{self.where}: cannot read {name}: {e}") from None
        if stream is None:
            raise ImageImportError(f"{self.where}: {name} is not a file")
        return cast(BinaryIO, stream)

    def close(self) -> None:
        self._tar.close()


def open_files(path: Path, where: str) -> DirFiles | TarFiles:
    if path.is_dir():
        return DirFiles(path, where)
    if not path.exists():
        raise ImageImportError(f"{where}: no such file or directory")
    return TarFiles(path, where)
