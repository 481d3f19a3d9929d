"""The lock an output is written under: flock(2) on the output itself.

A layout is locked on its directory, an archive on its file (or, while it does not exist yet,
on the directory that will hold it). flock is released by the kernel when its holder exits,
however it exits, so a killed build never leaves a lock behind, and other programs can take
part with flock(1): `flock OUT.oci cp -r OUT.oci /backup` copies a layout no vinci is writing.

A waiter says once that it waits (through `waiting`) and polls, so that a cancelled build
(Ctrl-C) stops waiting at once instead of sleeping in flock(2) until the holder is done.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

from engine.cancel import CancelToken

POLL_SECONDS = 0.05
# flock is unavailable here (some network filesystems): the write goes ahead unlocked, as
# every other OCI tool writes, rather than failing every build.
UNLOCKABLE = frozenset({errno.ENOLCK, errno.EBADF, errno.EINVAL, errno.EOPNOTSUPP})


def take(
    fd: int, cancel: CancelToken | None = None, waiting: Callable[[], None] | None = None
) -> None:
    """An exclusive flock on `fd`; `waiting()` is called once if another holder has it."""
    said = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno in UNLOCKABLE:
                return
            raise
        if not said:
            said = True
            if waiting is not None:
                waiting()
        if cancel is not None:
            cancel.check()
        time.sleep(POLL_SECONDS)


def try_take(fd: int) -> bool:
    """An exclusive flock on `fd` if nobody holds one (False if somebody does)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def same_file(fd: int, path: Path) -> bool:
    """Whether `path` still names the file open as `fd` (not removed or replaced since)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)
