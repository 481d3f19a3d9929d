"""Files that appear whole or not at all.

Blobs are written into an unnamed O_TMPFILE inode in the destination directory and linked
into place only after they are complete and fsync'd: a crash or SIGKILL at any point leaves no
file behind, and two builds racing to store the same blob both succeed. Where O_TMPFILE is not
available we fall back to a named temp file plus rename.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def _link_fd(fd: int, dest: Path) -> None:
    """Give the unnamed file `fd` the name `dest`.

    os.link uses linkat(AT_SYMLINK_FOLLOW), which resolves /proc/self/fd/N to the open inode,
    only when a dir fd is passed; without one it calls link(2), which fails with EXDEV.
    """
    dfd = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(f"/proc/self/fd/{fd}", dest.name, src_dir_fd=dfd, dst_dir_fd=dfd)
    finally:
        os.close(dfd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicFile:
    """A file being written. `commit(dest)` links it into place; `discard()` drops it.

    `replace=True` on commit overwrites an existing destination (for mutable records);
    otherwise an existing destination wins, which is right for content-addressed data.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._named: Path | None = None
        try:
            self.fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o644)
        except (OSError, AttributeError):
            self._named = directory / f".tmp-{os.urandom(8).hex()}"
            self.fd = os.open(
                self._named, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644
            )
        self._closed = False

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data)
        total = len(view)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        return total

    def flush(self) -> None:
        pass

    def commit(self, dest: Path, *, replace: bool = False, durable: bool = True) -> None:
        """`durable=False` skips the fsyncs, for files whose loss after a crash only costs
        work (a stamp, a stat memo): never for blobs or records."""
        if durable:
            os.fsync(self.fd)
        try:
            if self._named is not None:
                if replace or not dest.exists():
                    os.replace(self._named, dest)
                    self._named = None
            elif replace:
                tmp = dest.parent / f".tmp-{os.urandom(8).hex()}"
                _link_fd(self.fd, tmp)
                os.replace(tmp, dest)
            else:
                with contextlib.suppress(FileExistsError):
                    _link_fd(self.fd, dest)
            if durable:
                _fsync_dir(dest.parent)
        finally:
            self.discard()

    def discard(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.fd)
        if self._named is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._named)
            self._named = None

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def write_atomic(dest: Path, data: bytes, *, replace: bool = True, durable: bool = True) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with AtomicFile(dest.parent) as f:
        f.write(data)
        f.commit(dest, replace=replace, durable=durable)
