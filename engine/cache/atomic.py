"""Files that appear whole or not at all.

Blobs are written into an unnamed O_TMPFILE inode in the destination directory and linked
into place only after they are complete and fsync'd: a crash or SIGKILL at any point leaves no
file behind, and two builds racing to store the same blob both succeed. Where O_TMPFILE is not
available we fall back to a named temp file plus rename.

A cache entry is linked without an fsync of its directory (sync_name=False): a crash may lose
the name of an entry committed just before it, never its bytes, and the cache's readers take a
missing blob as a miss and a record naming one as no record. That was half the fsyncs of a
small build (9 of 18 for the hello example, ~8 ms). Files users own (an output's index.json,
vinci.lock) keep both fsyncs.

A large file is flushed to disk behind its writer, every WRITE_BEHIND bytes, on a thread of its
own: the fsync before the link then waits for the last few MiB instead of the whole file (half
a second for a 200 MB layer here, when two layers finished together: time no core worked).
8 MiB rather than 32: the commit of a 400 MB blob then waits ~1-2 ms instead of 11-19 ms, at
the end of a build when nothing else runs; the flusher makes 4x the fdatasync calls, on its
own thread, for the same ~0.04 s of CPU.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

WRITE_BEHIND = 8 << 20


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


class _Flusher:
    """fdatasync(2) of one file, on its own thread, each time it is kicked."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="vinci-flush", daemon=True)
        self._thread.start()

    def kick(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                os.fdatasync(self._fd)
            except OSError:
                return  # the commit's own fsync reports what is wrong

    def stop(self) -> None:
        """Returns once no flush is running: before the file descriptor may be closed."""
        self._stopping = True
        self._wake.set()
        self._thread.join()


class AtomicFile:
    """A file being written. `commit(dest)` links it into place; `discard()` drops it.

    `replace=True` on commit overwrites an existing destination (for mutable records);
    otherwise an existing destination wins, which is right for content-addressed data.
    """

    def __init__(self, directory: Path, *, flush_behind: bool = True) -> None:
        """`flush_behind=False` for a file that will not be committed durably: flushing it
        early would only add disk writes."""
        self.directory = directory
        self._flush_behind = flush_behind
        self._named: Path | None = None
        try:
            self.fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o644)
        except (OSError, AttributeError):
            self._named = directory / f".tmp-{os.urandom(8).hex()}"
            self.fd = os.open(
                self._named, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644
            )
        self._closed = False
        self._unflushed = 0
        self._flusher: _Flusher | None = None

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data)
        total = len(view)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self._unflushed += total
        if self._unflushed >= WRITE_BEHIND and self._flush_behind:
            self._unflushed = 0
            if self._flusher is None:
                self._flusher = _Flusher(self.fd)
            self._flusher.kick()
        return total

    def _stop_flushing(self) -> None:
        if self._flusher is not None:
            self._flusher.stop()
            self._flusher = None

    def flush(self) -> None:
        pass

    def commit(
        self, dest: Path, *, replace: bool = False, durable: bool = True, sync_name: bool = True
    ) -> None:
        """`durable=False` skips the fsyncs, for files whose loss after a crash only costs
        work (a stamp, a stat memo): never for blobs or records. `sync_name=False` keeps the
        file's fsync but not its directory's (a cache entry: see the module's text)."""
        self._stop_flushing()
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
            if durable and sync_name:
                _fsync_dir(dest.parent)
        finally:
            self.discard()

    def discard(self) -> None:
        self._stop_flushing()
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


def write_atomic(
    dest: Path, data: bytes, *, replace: bool = True, durable: bool = True, sync_name: bool = True
) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with AtomicFile(dest.parent) as f:
        f.write(data)
        f.commit(dest, replace=replace, durable=durable, sync_name=sync_name)
