"""How many CPUs this process may run on: its affinity (a container limited by cpuset gets what
it has), not the machine's count. The one rule every default that scales with the machine
(build jobs, compression threads, copy workers) starts from."""

from __future__ import annotations

import os


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
