"""How vinci talks to registries: TLS trust, insecure hosts, limits, retries, chunking.

Values come from the command line (`--ca-file`, `--insecure-registry`) or, for builds whose
import-oci layers fetch on worker threads, from the process-wide default the CLI installs, or
from the environment:

    VINCI_REGISTRY_CA_FILE       PEM bundle trusted in addition to the system's CAs
    VINCI_INSECURE_REGISTRIES    comma-separated hosts (host or host:port) allowed without TLS
                                 verification, falling back to plain HTTP
    DOCKER_CONFIG                directory of docker's config.json (default ~/.docker)
    VINCI_REGISTRY_DEADLINE      seconds one request may take in all, its answer read (default
                                 60), beside the per-read timeout
    VINCI_REGISTRY_BLOB_DEADLINE seconds one blob transfer may take (default 300), plus 4 s for
                                 each MiB of the blob (so a link slower than 256 KiB/s fails a
                                 large blob, and a server trickling bytes fails any)
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from engine.errors import RegistryError

MIB = 1 << 20
DEADLINE_ENV = "VINCI_REGISTRY_DEADLINE"
BLOB_DEADLINE_ENV = "VINCI_REGISTRY_BLOB_DEADLINE"


@dataclass(frozen=True)
class RegistryOptions:
    """Connection policy for every registry a command talks to."""

    insecure: frozenset[str] = frozenset()
    ca_file: Path | None = None
    docker_config: Path | None = None  # directory holding config.json; None: docker's default
    max_requests_per_host: int = 4  # ggcr uses 4 jobs, regclient 3 requests per host
    attempts: int = 5  # tries of one idempotent step, the first included
    backoff: float = 0.25  # first retry delay in seconds; doubles each time
    max_backoff: float = 8.0
    retry_after_cap: float = 15.0  # a registry asking for longer is not waited on that long
    timeout: float = 60.0  # per network operation (connect, each read, each write)
    deadline: float = 60.0  # per request, whole: a server trickling bytes is given up on
    blob_deadline: float = 300.0  # per blob transfer, plus blob_seconds_per_mib for its size
    blob_seconds_per_mib: float = 4.0
    chunk_threshold: int = 256 * MIB  # blobs above this go up in PATCH chunks
    chunk_size: int = 32 * MIB  # under the 100 MB body cap some CDNs enforce

    def blob_deadline_for(self, size: int) -> float:
        """The overall deadline of one transfer of a blob of `size` bytes."""
        return self.blob_deadline + self.blob_seconds_per_mib * max(0, size) / MIB

    def with_cli(self, insecure: list[str] | None, ca_file: str | None) -> RegistryOptions:
        """These options with the command line's additions."""
        out = self
        if insecure:
            out = replace(out, insecure=out.insecure | {h.strip() for h in insecure if h.strip()})
        if ca_file:
            out = replace(out, ca_file=Path(ca_file))
        return out


def options_from_env() -> RegistryOptions:
    hosts = os.environ.get("VINCI_INSECURE_REGISTRIES", "")
    ca = os.environ.get("VINCI_REGISTRY_CA_FILE", "").strip()
    return RegistryOptions(
        insecure=frozenset(h.strip() for h in hosts.replace(" ", ",").split(",") if h.strip()),
        ca_file=Path(ca) if ca else None,
        deadline=_seconds(DEADLINE_ENV, RegistryOptions.deadline),
        blob_deadline=_seconds(BLOB_DEADLINE_ENV, RegistryOptions.blob_deadline),
    )


def _seconds(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise RegistryError(f"{name}={text!r} is not a positive number of seconds")
    return value


_lock = threading.Lock()
_default: RegistryOptions | None = None


def set_default_options(options: RegistryOptions | None) -> None:
    """Install the options that operations without explicit ones use (None: the environment)."""
    global _default
    with _lock:
        _default = options


def default_options() -> RegistryOptions:
    with _lock:
        return _default if _default is not None else options_from_env()
