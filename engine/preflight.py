"""Whether each layer of the last stamp still holds, worked out in a child process while the
parent loads the engine.

When the up-to-date check (engine/uptodate.py) cannot answer a build, the full build still
takes every layer whose recorded inputs are unchanged from the last stamp (uptodate.Reuse).
Checking those inputs is one `lstat` per source file: ~4 us each on this machine, 35-45 ms
for the 9,000 unchanged files of the 10,000-file benchmark spec, the largest part of a
one-file rebuild besides the layer itself. The same process then spends 40-70 ms importing
the engine (and pyyaml, when the spec changed).

The two need not wait for each other, but threads cannot share them: the stats are ~30%
Python, and a thread running them behind a thread importing modules waits for the GIL at
every one (measured: slower than doing both in turn). A forked child has a GIL of its own.
It checks the layers, writes one byte per layer down a pipe and exits; the parent reads the
answer when the build wants it (git's preload-index, which lstat's the index on threads, is
the same idea in C).

The child is forked only before the engine is loaded (no threads running yet), when there is
a second CPU to run it on and enough to check to be worth ~0.2 ms of fork; otherwise, and if
the child fails in any way, the layers are checked in this process when asked, as before.

Imports nothing but `os`, `sys` and `array` (it runs inside the up-to-date check).
"""

from __future__ import annotations

import os
import sys
from array import array

TYPE_CHECKING = False  # not typing's: see engine/uptodate.py
if TYPE_CHECKING:
    from typing import Any

# Below this many files and directories to check, a fork costs about what it saves.
FORK_ABOVE = 500


def layer_holds(layer: tuple[Any, ...] | None) -> bool:
    """Whether one stamp layer's recorded inputs are all still as they were. False for a
    source gone or unreadable and for a damaged entry (the layer is planned again), and for
    None (an import layer, which has no inputs on the host)."""
    if layer is None:
        return False
    try:
        return _unchanged(layer)
    except (OSError, ValueError, TypeError, OverflowError):  # OverflowError: an inode >= 2**63
        return False


def _unchanged(layer: tuple[Any, ...]) -> bool:
    _node, _record, links, listings, paths, keys = layer
    for given, real in links:
        if os.path.realpath(given) != real:
            return False
    for directory, names in listings:
        if sorted(os.listdir(directory)) != names:
            return False
    # Stat keys are kept packed, one array of int64s: 10,000 tuples of four large ints would
    # take longer to unmarshal than to stat.
    lstat = os.lstat
    now = array("q")
    for path in paths:
        st = lstat(path)
        now.extend((st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))
    return bool(now.tobytes() == keys)


class LayerVerdicts:
    """Whether each of `layers` (a stamp's layer entries, None for an import layer) still
    holds. `known` are verdicts the caller already has; the rest are worked out in a child
    process from now on, when that pays and `fork` allows (see the module's text), else on
    demand."""

    def __init__(
        self, layers: list[Any], known: dict[int, bool] | None = None, *, fork: bool = True
    ) -> None:
        self._layers = layers
        self._verdicts: dict[int, bool] = dict(known or {})
        self._todo = [
            i for i, layer in enumerate(layers) if layer is not None and i not in self._verdicts
        ]
        self._child: tuple[int, int] | None = None  # pid, read end of its pipe
        if fork and self._todo and _worth_a_child(layers, self._todo):
            self._child = _fork(layers, self._todo)

    def holds(self, index: int) -> bool:
        """Whether layer `index`'s recorded inputs are unchanged."""
        if self._child is not None:
            self._collect()
        verdict = self._verdicts.get(index)
        if verdict is None:
            verdict = self._verdicts[index] = layer_holds(self._layers[index])
        return verdict

    def _collect(self) -> None:
        assert self._child is not None
        pid, fd = self._child
        self._child = None
        answer = b""
        try:
            while chunk := os.read(fd, 65536):
                answer += chunk
        except OSError:
            answer = b""
        finally:
            os.close(fd)
        try:
            _, status = os.waitpid(pid, 0)
        except OSError:
            status = -1
        # Anything short of a clean exit with one verdict per layer: check here instead.
        if status == 0 and len(answer) == len(self._todo) and set(answer) <= {48, 49}:
            for i, verdict in zip(self._todo, answer, strict=True):
                self._verdicts[i] = verdict == 49

    def close(self) -> None:
        """Reap the child if its answer was never asked for."""
        if self._child is not None:
            self._collect()


def _worth_a_child(layers: list[Any], todo: list[int]) -> bool:
    if not hasattr(os, "fork") or _cpus() < 2:
        return False
    # Forking a process with threads running is unsafe (a lock held by another thread stays
    # held in the child); before the engine is loaded there are none.
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return False
    work = sum(len(layers[i][3]) + len(layers[i][4]) for i in todo)
    return work >= FORK_ABOVE


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _answer(layers: list[Any], todo: list[int]) -> bytes:
    """The child's answer: b"1" for each layer of `todo` that holds, b"0" for the others."""
    return bytes(49 if layer_holds(layers[i]) else 48 for i in todo)


def _fork(layers: list[Any], todo: list[int]) -> tuple[int, int] | None:
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    if pid == 0:  # the child: answer, and leave without running anything of the parent's
        status = 1
        try:
            # Not the parent's stdin, stdout or stderr: a reader of its output (`$(vinci
            # build)`) must see the end of it when the parent exits, not when this child does.
            os.close(read_end)
            os.closerange(0, min(write_end, 3))  # errors (one not open) ignored
            os.closerange(write_end + 1, 3)
            view = memoryview(_answer(layers, todo))
            while view:
                view = view[os.write(write_end, view) :]
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, read_end
