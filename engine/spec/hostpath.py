"""What a host path named in a spec must be: there, readable, and a regular file, a directory
or an image (layout directory or archive) as its key says.

Checked when a spec is loaded (engine/spec/load.py), and again when the full build takes the
spec its last build parsed instead of parsing the same bytes again (engine/cli/uptodate.py): the
parse depends on the host only through these checks, so a kept spec stands only while each of
its host paths still passes them.

Imports nothing of pyyaml: the kept spec's point is not to load it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def host_path_problem(path: Path, value: str, want: str, resolved: str = "") -> str | None:
    """Why `path` (written `value` in the spec; `resolved` says where that led) cannot be used
    as `want` ('file', 'dir', 'image', 'tar' or 'any'), worded to follow `where: `; None if it
    can. A 'tar' is a regular file whose first tar header reads (compressed or not)."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return f"{value!r} does not exist{resolved}"
    except OSError as e:
        return f"cannot access {value!r}: {e.strerror}"
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        target = os.readlink(path) if os.path.islink(path) else "?"
        return f"{value!r} is a symlink to {target!r}, which does not exist"
    except OSError as e:
        return f"cannot access {value!r}: {e.strerror}"
    is_dir, is_reg = stat.S_ISDIR(st.st_mode), stat.S_ISREG(st.st_mode)
    if want in ("file", "tar") and not is_reg:
        hint = " (copy a tree with a `directory` layer)" if is_dir else ""
        return f"{value!r} is {_file_kind(st.st_mode)}, not a regular file{hint}"
    if want == "dir" and not is_dir:
        return f"{value!r} is {_file_kind(st.st_mode)}, not a directory"
    if want == "image" and not (is_dir or is_reg):
        return f"{value!r} is {_file_kind(st.st_mode)}, not an image layout directory or archive"
    # A directory must also be searchable to copy what is in it.
    if not os.access(path, os.R_OK | (os.X_OK if is_dir else 0)):
        return f"{value!r} is not readable (permission denied)"
    if want == "tar":
        return _tar_problem(path, value)
    return None


def _tar_problem(path: Path, value: str) -> str | None:
    # Imported here: the decompressors are not loaded for specs without a tar layer.
    from engine.tar.read import head_problem

    try:
        with open(path, "rb") as f:
            problem = head_problem(f)
    except OSError as e:
        return f"cannot read {value!r}: {e.strerror}"
    if problem is None:
        return None
    return f"{value!r} is not a tar archive (plain, gzip, zstd or xz): {problem}"


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISREG, "a regular file"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _file_kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "a special file")
