"""Shared pytest fixtures: busybox, real registries, the fault proxy, a reference image.

Tools the tests need are installed by `.ci/setup`. When one is missing a test that needs it is
skipped with the reason, except under CI=true, where it fails: a CI run must never pass by
skipping. Tests using a registry fixture are marked `registry` automatically, so
`-m "not registry"` deselects them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.faultproxy import FaultProxy
from support.registry import RegistryServer
from support.verify import build_busybox_layout, in_ci, require_tool

_REGISTRY_FIXTURES = frozenset({"registry", "registry_factory", "fault_proxy"})

BUSYBOX = Path("/bin/busybox")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if (
            _REGISTRY_FIXTURES.intersection(fixtures)
            and item.get_closest_marker("registry") is None
        ):
            item.add_marker(pytest.mark.registry)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Runs before fixture setup, so a missing registry is reported once, clearly, per test
    # rather than as a fixture error.
    if item.get_closest_marker("registry") is not None:
        require_tool("docker-registry")


@pytest.fixture(scope="session")
def busybox_path() -> Path:
    """The static busybox from Debian's busybox-static: small, runnable, no libc needed."""
    if not BUSYBOX.is_file():
        reason = f"{BUSYBOX} is missing (apt: busybox-static; run .ci/setup)"
        if in_ci():
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    return BUSYBOX


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """One plain-HTTP anonymous registry for the whole session; use unique repository names."""
    require_tool("docker-registry")
    with RegistryServer(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[Callable[..., RegistryServer]]:
    """Start extra registries for this test: `registry_factory(auth="basic", tls=True)`.

    Keyword arguments go to `RegistryServer` (auth: none|basic|token, tls, username,
    password). Every registry started is stopped when the test ends.
    """
    require_tool("docker-registry")
    started: list[RegistryServer] = []

    def start(**kwargs: Any) -> RegistryServer:
        server = RegistryServer(tmp_path / f"registry-{len(started)}", **kwargs)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def fault_proxy(registry: RegistryServer) -> Iterator[FaultProxy]:
    """A `FaultProxy` in front of the session registry, stopped when the test ends."""
    with FaultProxy(registry.host, max_lifetime=300) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def busybox_layout(busybox_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI layout with image `v1` (busybox, /bin/sh, /etc/hello) made by skopeo, not vinci.

    Shared by the session: copy it before changing anything in it.
    """
    require_tool("skopeo")
    return build_busybox_layout(
        tmp_path_factory.mktemp("busybox-layout") / "layout", busybox=busybox_path, tag="v1"
    )
