"""The stat data that stands for a file's content between two builds, and when it cannot.

(size, mtime_ns, inode, ctime_ns) unchanged means content unchanged, as in git's index: the
stat memo (engine/cache/memo.py) keys content digests by it, and the up-to-date check
(engine/cli/uptodate.py) compares it for every source. A file modified within the timestamp
granularity of the moment it was looked at could change again without changing its stat
data ("racily clean"), so data whose mtime is within RACY_NS of that moment is never trusted.

Imports nothing but `os`: the up-to-date check runs before anything heavier is loaded.
"""

from __future__ import annotations

import os

StatKey = tuple[int, int, int, int]  # size, mtime_ns, inode, ctime_ns
RACY_NS = 2_000_000_000


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def is_racy(mtime_ns: int, looked_ns: int) -> bool:
    """Whether stat data with this mtime, taken at about `looked_ns` (wall clock), may hide a
    later change."""
    return mtime_ns >= looked_ns - RACY_NS
