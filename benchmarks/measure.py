"""Running a command and measuring it: wall time, CPU time and peak RSS from the OS.

Each run is a child process reaped with os.wait4, so its resource usage (CPU seconds, peak RSS)
is the kernel's own account of that child and everything it waited for (a shell pipeline's
members included), not an estimate. Commands that are compared run alternately, one of each per
round, so a slow spell of the machine (other load, page-cache writeback) hits both sides alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

GNU_TIME = "/usr/bin/time"


class BenchError(RuntimeError):
    """A measured command failed: the benchmark's figures would be meaningless."""


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu: float  # user + system seconds of the child and its reaped descendants
    max_rss_kb: int  # peak resident set of the largest process in the run (ru_maxrss)
    stdout: str


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    shell: bool = False,
) -> Run:
    """Runs one command to completion; raises BenchError with its stderr if it fails.

    Output goes to unnamed temporary files, not pipes: the child is reaped with os.wait4 (which
    subprocess would otherwise do, losing the rusage), and a full pipe must never stall it.
    """
    command: list[str] = (
        ["/bin/bash", "-c", " ".join(map(str, argv))] if shell else list(map(str, argv))
    )
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile() as rss,
    ):
        if os.access(GNU_TIME, os.X_OK):
            # The peak RSS a child reports counts its parent's memory from before exec (the
            # address space it was forked from, or shares until exec under vfork), so this
            # process, holding workload corpora, would inflate it. GNU time is a small
            # process: its child's ru_maxrss is the command's own.
            command = [GNU_TIME, "-q", "-f", "%M", "-o", rss.name, *command]
        started = time.perf_counter()
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        reported = rss.read().decode().split()
        max_rss_kb = int(reported[-1]) if reported else usage.ru_maxrss
    if proc.returncode != 0:
        cmd = " ".join(map(str, argv))
        raise BenchError(f"{cmd!r} exited {proc.returncode}: {stderr[-2000:]}")
    return Run(seconds, usage.ru_utime + usage.ru_stime, max_rss_kb, stdout)


@dataclass
class Series:
    """The runs of one side of a comparison."""

    name: str
    runs: list[Run] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)

    @property
    def max_rss_mb(self) -> float:
        return max(r.max_rss_kb for r in self.runs) / 1024

    @property
    def all_seconds(self) -> list[float]:
        return [r.seconds for r in self.runs]


def alternate(
    sides: Mapping[str, Callable[[], Run]],
    repeat: int,
    before: Callable[[str], None] | None = None,
) -> dict[str, Series]:
    """Runs each side once per round, `repeat` rounds; `before(name)` resets state (a cold
    cache, say) outside the timed part."""
    series = {name: Series(name) for name in sides}
    for _ in range(repeat):
        for name, fn in sides.items():
            if before is not None:
                before(name)
            series[name].runs.append(fn())
    return series
