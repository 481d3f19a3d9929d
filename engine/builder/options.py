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
from engine.oci.reference import parse_repository

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
    read and write: docs/fleet-cache.md), None for $VINCI_CACHE_FROM / $VINCI_CACHE_TO when
    set, else the settings file's `cache-from` / `cache-to` (engine/config.py), "" for none;
    `cache_required` (None: $VINCI_CACHE_REQUIRED, else the file's `cache-required`) fails the
    build when that cache cannot be used, instead of one warning."""

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
    """The settings the options ask for. Each None takes its environment variable
    ($VINCI_CACHE_FROM, $VINCI_CACHE_TO, $VINCI_CACHE_REQUIRED) when that is set, even empty
    ("none"), else the settings file (engine/config.py). `cache_to` is read too."""
    # Imported here: a build the up-to-date check answers never reads the settings file.
    from engine.config import Settings, load_settings

    file: Settings | None = None

    def setting(value: object, env: str, field: str, flag: str) -> tuple[object, str]:
        nonlocal file
        if value is not None:
            return value, flag
        if env in os.environ:
            return os.environ[env].strip(), f"${env}"
        if file is None:
            file = load_settings()
        return getattr(file, field), f"{file.path}: {flag.lstrip('-')}"

    read_from, from_where = setting(cache_from, "VINCI_CACHE_FROM", "cache_from", "--cache-from")
    write_to, to_where = setting(cache_to, "VINCI_CACHE_TO", "cache_to", "--cache-to")
    must, _ = setting(required, "VINCI_CACHE_REQUIRED", "cache_required", "--cache-required")
    if isinstance(must, str):
        must = must not in ("", "0")
    write = _repository(str(write_to or ""), to_where) or None
    read = tuple(
        dict.fromkeys(r for r in (write, _repository(str(read_from or ""), from_where)) if r)
    )
    return RemoteSettings(read, write, bool(must))


def _repository(text: str | None, flag: str) -> str:
    if not text:
        return ""
    try:
        return parse_repository(text).name
    except ValueError as e:
        raise UsageError(f"{flag}: {e}") from None
