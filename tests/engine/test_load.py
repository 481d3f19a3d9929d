"""`vinci build --load` (into podman, else docker), `-o docker-archive:- | podman load`, and
`--tag`/`--image` naming the output: the archive's repository tag and the loaded image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import VinciRunner
from support.verify import require_tool

# The recipe podman needs on this class of machine (tests/support/verify.py, podman_run).
RUN_FLAGS = [
    "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc",
]  # fmt: skip


def _podman_env(tmp_path: Path) -> dict[str, str]:
    """A private podman store: nothing of the host's images is touched."""
    conf = tmp_path / "storage.conf"
    conf.write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{tmp_path}/pm-root"\n'
        f'runroot = "{tmp_path}/pm-run"\n'
    )
    return {"CONTAINERS_STORAGE_CONF": str(conf), "VINCI_CACHE_DIR": str(tmp_path / "cache")}


def _podman(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *RUN_FLAGS, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    )


def _run_image(env: dict[str, str], name: str) -> str:
    run = _podman(
        env, "run", "--rm", "--pull", "never", "--network", "none",
        "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", name,
    )  # fmt: skip
    try:
        return run.stdout
    finally:
        _podman(env, "rmi", "--all", "--force")


def test_tag_and_image_name_the_archive(hello: Path, tmp_path: Path, vinci: VinciRunner) -> None:
    out = tmp_path / "hello.tar"
    env = {"VINCI_CACHE_DIR": str(tmp_path / "cache")}
    vinci(
        "build", hello, "-o", f"docker-archive:{out}", "--image", "example.com/team/hello",
        "--tag", "v2", env=env,
    )  # fmt: skip
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["example.com/team/hello:v2"]
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "v2"
    # Without them, the spec's image and tag, as before.
    vinci("build", hello, "-o", f"docker-archive:{out}", env=env)
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["registry.gitlab.com/thriqon/vinci/simplest:latest"]


def test_load_names_a_missing_tool(hello: Path, tmp_path: Path, vinci: VinciRunner) -> None:
    run = vinci(
        "build",
        hello,
        "--load=docker",
        env={"PATH": "/nonexistent", "VINCI_CACHE_DIR": str(tmp_path)},
        check=False,
    )
    assert run.returncode == 2
    assert "--load: docker is not on PATH" in run.stderr


@pytest.mark.slow
def test_build_load_then_podman_run(hello: Path, tmp_path: Path, vinci: VinciRunner) -> None:
    require_tool("podman")
    env = _podman_env(tmp_path)
    run = vinci("build", hello, "--load", "--tag", "v1", env=env)
    assert "loaded registry.gitlab.com/thriqon/vinci/simplest:v1 into podman" in run.stderr
    assert _run_image(env, "registry.gitlab.com/thriqon/vinci/simplest:v1") == "Hello, World!\n"


@pytest.mark.slow
def test_docker_archive_to_stdout_into_podman_load(hello: Path, tmp_path: Path) -> None:
    require_tool("podman")
    env = _podman_env(tmp_path)
    build = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "build", str(hello), "-o", "docker-archive:-",
         "--image", "localhost/piped", "--tag", "v3"],
        stdout=subprocess.PIPE,
        env={**os.environ, **env},
    )  # fmt: skip
    load = subprocess.run(
        ["podman", *RUN_FLAGS, "load"],
        stdin=build.stdout,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert build.wait() == 0
    assert load.returncode == 0, load.stderr
    assert _run_image(env, "localhost/piped:v3") == "Hello, World!\n"


@pytest.mark.slow
def test_the_readme_podman_line_works(hello: Path, tmp_path: Path, vinci: VinciRunner) -> None:
    require_tool("podman")
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("$ podman run "))
    env = _podman_env(tmp_path)
    vinci("build", hello, env=env)  # the README builds examples/hello: this is its copy
    words = line.removeprefix("$ ").replace(
        "examples/hello/vinci.oci", str(hello.parent / "vinci.oci")
    )
    run = subprocess.run(
        words.split(),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == "Hello, World!\n"
