"""The options that shape a build, as one frozen value: the CLI, the workbench and the library
all describe a build with a BuildOptions and hand it to the one build path
(engine/builder/run.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engine.errors import UsageError

MAX_DEFAULT_JOBS = 8  # each job holds a few MiB in flight: a big machine's default stays modest

LockMode = Literal["use", "ignore", "require"]


def default_jobs() -> int:
    """`--jobs` when not given: the CPUs this process may run on (its affinity, so a container
    limited by cpuset gets what it has), at most MAX_DEFAULT_JOBS."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_JOBS, cpus))


def epoch_from_env() -> int:
    """SOURCE_DATE_EPOCH as whole seconds, 0 when unset or blank: the one clock an image may
    show. Anything else is a usage error."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return 0
    try:
        epoch = int(value)
    except ValueError:
        epoch = -1
    if epoch < 0:
        raise UsageError(
            f"SOURCE_DATE_EPOCH={value!r} is not a non-negative whole number of seconds"
        )
    return epoch


@dataclass(frozen=True)
class BuildOptions:
    """How to build a spec. None means the default: `created` from SOURCE_DATE_EPOCH (else 0),
    `cache_dir` from VINCI_CACHE_DIR (else ~/.cache/vinci), `jobs` from the CPU count.

    `lock`: "use" honours the spec's vinci.lock if there is one, "ignore" never reads it,
    "require" fails unless the image is exactly the locked one. `output` is where the image
    is written (`oci:DIR`, `oci-archive:FILE`, `docker-archive:FILE`), None for nowhere but
    the cache. `image` and `tag` name the output instead of the spec's `image`: the layout's
    ref name and an archive's repository tag (what `docker load` and `podman load` call it)."""

    codec: str = "gzip"
    level: int | None = None
    created: int | None = None
    jobs: int = 0
    lock: LockMode = "use"
    cache_dir: Path | None = None
    output: str | None = None
    image: str | None = None
    tag: str | None = None

    def timestamp(self) -> int:
        """The image's timestamp: `created`, else SOURCE_DATE_EPOCH, else 0."""
        if self.created is None:
            return epoch_from_env()
        if self.created < 0:
            raise UsageError("--source-date-epoch must not be negative")
        return self.created
