"""How vinci talks to registries: TLS trust, insecure hosts, limits, retries, chunking.

Values come from the command line (`--ca-file`, `--insecure-registry`) or, for builds whose
import-oci layers fetch on worker threads, from the process-wide default the CLI installs, or
from the environment:

    VINCI_REGISTRY_CA_FILE       PEM bundle trusted in addition to the system's CAs
    VINCI_INSECURE_REGISTRIES    comma-separated hosts (host or host:port) allowed without TLS
                                 verification, falling back to plain HTTP
    DOCKER_CONFIG                directory of docker's config.json (default ~/.docker)
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path

MIB = 1 << 20


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
    chunk_threshold: int = 256 * MIB  # blobs above this go up in PATCH chunks
    chunk_size: int = 32 * MIB  # under the 100 MB body cap some CDNs enforce

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
    )


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
