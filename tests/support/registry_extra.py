"""Checks the registry/archive tests need beyond `verify`: `podman load` of an archive (rather
than `podman pull docker-archive:`), and `docker load` through the docker CLI.

There is no dockerd on the test machines (research/environment.md §5), so the docker CLI talks to
podman's Docker-compatible API (`podman system service` on a private unix socket). That checks
the docker client's side of `docker load` (its tar upload and the answer it parses) and podman's
loader; it is not a check of dockerd's own loader.

Same podman recipe as `verify.podman_run`: runc, cgroupfs, vfs storage, explicit ulimits, no
network, throwaway storage; every process started here is stopped by PID.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .verify import PODMAN_RUNROOT_MAX, run_tool

__all__ = ["docker_load_via_podman", "podman_load_run"]


@contextmanager
def _podman_store(workdir: Path) -> Iterator[list[str]]:
    workdir.mkdir(parents=True, exist_ok=True)
    store = Path(tempfile.mkdtemp(prefix="podman-", dir=workdir))
    state = Path(tempfile.mkdtemp(prefix="vinci-pl-", dir="/tmp"))
    if len(str(state / "run")) > PODMAN_RUNROOT_MAX:
        raise AssertionError(f"podman runroot {state / 'run'} is too long for podman")
    base = [
        "podman",
        "--root", str(store / "root"),
        "--runroot", str(state / "run"),
        "--tmpdir", str(state / "tmp"),
        "--storage-driver", "vfs",
        "--cgroup-manager", "cgroupfs",
        "--events-backend", "file",
        "--runtime", "runc",
    ]  # fmt: skip
    try:
        yield base
    finally:
        subprocess.run(
            [*base, "rm", "--all", "--force", "--time", "0"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        for root in (store, state):
            prefix = str(root.resolve()) + "/"
            mounts = [
                line.split()[1]
                for line in Path("/proc/self/mounts").read_text().splitlines()
                if len(line.split()) > 1 and line.split()[1].startswith(prefix)
            ]
            for point in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)
            shutil.rmtree(root, ignore_errors=True)


def podman_load_run(
    archive: Path, name: str, args: Sequence[str] = (), *, workdir: Path, timeout: float = 180
) -> tuple[str, str]:
    """`podman load -i archive`, then run the loaded image `name`; return (load output, run
    stdout). Raises AssertionError with podman's stderr on any failure."""
    with _podman_store(workdir) as base:
        loaded = run_tool([*base, "load", "--input", archive], timeout=timeout)
        run_argv = [
            *base, "run", "--rm", "--pull", "never", "--network", "none",
            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", name, *args,
        ]  # fmt: skip
        run = run_tool(
            run_argv,
            timeout=timeout,
        )
        return loaded.stdout.decode(errors="replace"), run.stdout.decode(errors="replace")


def docker_load_via_podman(archive: Path, name: str, *, workdir: Path) -> tuple[str, str]:
    """`docker load -i archive` against a private podman API socket; return (the load output,
    `docker image inspect NAME --format {{.Id}}`)."""
    with _podman_store(workdir) as base:
        sock = Path(tempfile.mkdtemp(prefix="vinci-dk-", dir="/tmp")) / "docker.sock"
        service = subprocess.Popen(
            [*base, "system", "service", "--time=0", f"unix://{sock}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while not sock.exists():
                if service.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("podman system service did not start")
                time.sleep(0.05)
            env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
            loaded = run_tool(["docker", "load", "--input", archive], env=env, timeout=120)
            inspected = run_tool(
                ["docker", "image", "inspect", name, "--format", "{{.Id}}"], env=env, timeout=60
            )
            return loaded.stdout.decode(errors="replace"), inspected.stdout.decode().strip()
        finally:
            service.terminate()
            try:
                service.wait(timeout=10)
            except subprocess.TimeoutExpired:
                service.kill()
                service.wait(timeout=10)
            shutil.rmtree(sock.parent, ignore_errors=True)
