"""Registry names as docker maps them: API host, credential key, loopback test.

The registry part of a reference (`docker.io`, `ghcr.io`, `127.0.0.1:5000`) is not always the
host to connect to, nor the key docker's config.json files credentials under.
"""

from __future__ import annotations

import ipaddress

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"


def api_host(registry: str) -> str:
    """The host:port the registry API lives on."""
    if registry in (DOCKER_HUB, "index.docker.io"):
        return DOCKER_HUB_API
    return registry


def credential_key(registry: str) -> str:
    """The key docker's config.json and credential helpers use for this registry."""
    if registry in (DOCKER_HUB, "index.docker.io", DOCKER_HUB_API):
        return DOCKER_HUB_AUTH_KEY
    return registry


def normalize_key(key: str) -> str:
    """A config.json `auths` key reduced to host[:port]; docker accepts URLs there too."""
    out = key.strip()
    for prefix in ("https://", "http://"):
        if out.startswith(prefix):
            out = out[len(prefix) :]
    out = out.split("/", 1)[0]
    if out in ("index.docker.io", DOCKER_HUB_API):
        return DOCKER_HUB
    return out


def hostname(host: str) -> str:
    """The name part of host[:port] (IPv6 literals keep no brackets)."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") > 1:  # a bare IPv6 literal
        return host
    return host.rsplit(":", 1)[0] if ":" in host else host


def is_loopback(host: str) -> bool:
    name = hostname(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
