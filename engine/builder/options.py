"""The options that shape a build, as one frozen value: the CLI, the workbench and the library
all describe a build with a BuildOptions and hand it to the one build path
(engine/builder/run.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engine.cpus import available_cpus
from engine.errors import UsageError
from engine.oci.reference import parse_reference

MAX_DEFAULT_JOBS = 8  # each job holds a few MiB in flight: a big machine's default stays modest

LockMode = Literal["use", "ignore", "require"]


def default_jobs() -> int:
    """`--jobs` when not given: the CPUs this process may run on (its affinity, so a container
    limited by cpuset gets what it has), at most MAX_DEFAULT_JOBS."""
    return min(MAX_DEFAULT_JOBS, available_cpus())


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
    ref name and an archive's repository tag (what `docker load` and `podman load` call it).

    `platforms` builds only these of a multi-platform spec's platforms ("os/arch"; one gives
    that platform's plain image, several an index of them). `labels` are added to the
    config's labels and `annotations` to the manifest's (and the index's), over the spec's.

    `cache_from` and `cache_to` name a registry repository holding a shared layer cache (read;
    read and write: docs/fleet-cache.md), None for $VINCI_CACHE_FROM / $VINCI_CACHE_TO, "" for
    none; `cache_required` (None: $VINCI_CACHE_REQUIRED) fails the build when that cache
    cannot be used, instead of one warning."""

    codec: str = "gzip"
    level: int | None = None
    created: int | None = None
    jobs: int = 0
    lock: LockMode = "use"
    cache_dir: Path | None = None
    output: str | None = None
    cache_from: str | None = None
    cache_to: str | None = None
    cache_required: bool | None = None
    image: str | None = None
    tag: str | None = None
    platforms: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()

    def stamped(self) -> bool:
        """Whether the image's time was given (`created` or SOURCE_DATE_EPOCH): only then
        does the manifest say when it was made (org.opencontainers.image.created)."""
        return self.created is not None or bool(os.environ.get("SOURCE_DATE_EPOCH", "").strip())

    def timestamp(self) -> int:
        """The image's timestamp: `created`, else SOURCE_DATE_EPOCH, else 0."""
        if self.created is None:
            return epoch_from_env()
        if self.created < 0:
            raise UsageError("--source-date-epoch must not be negative")
        return self.created

    def remote(self) -> RemoteSettings:
        """The remote layer cache these options ask for (the environment's where None)."""
        return remote_settings(self.cache_from, self.cache_to, self.cache_required)


@dataclass(frozen=True)
class RemoteSettings:
    """Where a build reads and writes its remote layer cache: repositories as
    `registry/repository`. `required`: a remote failure fails the build."""

    read: tuple[str, ...] = ()
    write: str | None = None
    required: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.read or self.write)


def remote_settings(
    cache_from: str | None, cache_to: str | None, required: bool | None
) -> RemoteSettings:
    """The settings the options ask for; None takes $VINCI_CACHE_FROM, $VINCI_CACHE_TO and
    $VINCI_CACHE_REQUIRED. `cache_to` is read too."""
    if cache_from is None:
        cache_from = os.environ.get("VINCI_CACHE_FROM", "").strip()
    if cache_to is None:
        cache_to = os.environ.get("VINCI_CACHE_TO", "").strip()
    if required is None:
        required = os.environ.get("VINCI_CACHE_REQUIRED", "").strip() not in ("", "0")
    write = _repository(cache_to, "--cache-to") if cache_to else None
    read = tuple(dict.fromkeys(r for r in (write, _repository(cache_from, "--cache-from")) if r))
    return RemoteSettings(read, write, required)


def _repository(text: str | None, flag: str) -> str:
    if not text:
        return ""
    try:
        ref = parse_reference(text)
    except ValueError as e:
        raise UsageError(f"{flag}: {e}") from None
    if ref.tag or ref.digest is not None:
        raise UsageError(f"{flag} {text}: name a repository, without a tag or digest")
    return ref.name
