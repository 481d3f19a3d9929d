"""`--output oci-archive:FILE` and `--output docker-archive:FILE`: one deterministic tarball that
is both an OCI archive and a docker-archive, read back by skopeo, umoci, podman and the docker
CLI, and importable by vinci itself with every digest kept."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest
from conftest import VinciRunner
from support.registry_extra import docker_load_via_podman, podman_load_run
from support.verify import (
    oci_image_tool_validate,
    require_tool,
    skopeo_copy,
    skopeo_inspect_raw,
    umoci_unpack,
)

IMAGE = "registry.gitlab.com/thriqon/vinci/simplest:latest"  # examples/hello's `image`


def _build(vinci: VinciRunner, spec: Path, target: str, cache: Path) -> str:
    return vinci("build", spec, "--output", target, env={"VINCI_CACHE_DIR": str(cache)}).digest


def test_archive_is_both_oci_and_docker_and_deterministic(
    hello: Path, tmp_path: Path, vinci: VinciRunner, busybox_path: Path
) -> None:
    oci = tmp_path / "hello-oci.tar"
    docker = tmp_path / "hello-docker.tar"
    digest = _build(vinci, hello, f"oci-archive:{oci}", tmp_path / "c1")
    assert _build(vinci, hello, f"docker-archive:{docker}", tmp_path / "c2") == digest
    # The same bytes for both names, from two caches: a pure function of the image.
    assert oci.read_bytes() == docker.read_bytes()

    with tarfile.open(oci) as tar:
        names = tar.getnames()
        manifest_json = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        index_json = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in tar.getmembers())
    assert names[:3] == ["oci-layout", "index.json", "manifest.json"]
    assert manifest_json[0]["RepoTags"] == [IMAGE]
    assert index_json["manifests"][0]["digest"] == digest
    assert index_json["manifests"][0]["annotations"] == {
        "io.containerd.image.name": IMAGE,
        "org.opencontainers.image.ref.name": "latest",
    }

    # Read as an OCI archive: the manifest bytes are ours; umoci checks every diff_id.
    raw = skopeo_inspect_raw(f"oci-archive:{oci}:latest")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    layout = tmp_path / "from-oci"
    skopeo_copy(f"oci-archive:{oci}:latest", f"oci:{layout}:v1")
    oci_image_tool_validate(layout, "v1")
    rootfs = umoci_unpack(layout, "v1", tmp_path / "b1")
    assert (rootfs / "message").read_bytes() == b"Hello, World!\n"
    assert (rootfs / "cat").read_bytes() == busybox_path.read_bytes()

    # Read as a docker-archive (manifest.json): same config, same content.
    config = json.loads(skopeo_inspect_raw(f"docker-archive:{docker}", config=True))
    assert config["config"]["Entrypoint"] == ["/cat", "/message"]
    from_docker = tmp_path / "from-docker"
    skopeo_copy(f"docker-archive:{docker}", f"oci:{from_docker}:v1")
    rootfs = umoci_unpack(from_docker, "v1", tmp_path / "b2")
    assert (rootfs / "message").read_bytes() == b"Hello, World!\n"


def test_vinci_imports_its_own_archive_byte_for_byte(
    hello: Path, tmp_path: Path, vinci: VinciRunner
) -> None:
    archive = tmp_path / "hello.tar"
    _build(vinci, hello, f"docker-archive:{archive}", tmp_path / "c")
    spec = tmp_path / "derived" / "vinci.yaml"
    spec.parent.mkdir()
    spec.write_text(
        "spec-version: v1\nlayers:\n"
        f"  - import: {{path: {archive}, inherit-config: true}}\n"
        "  - file: {path: /extra, contents: x}\n"
    )
    run = vinci("build", spec, "--json", "--output", f"oci:{tmp_path / 'o'}",
                env={"VINCI_CACHE_DIR": str(tmp_path / "fresh")})  # fmt: skip
    with tarfile.open(archive) as tar:
        manifest_json = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    imported = [
        layer["digest"].removeprefix("sha256:") for layer in json.loads(run.stdout)["layers"]
    ]
    assert [f"blobs/sha256/{d}" for d in imported[:2]] == manifest_json[0]["Layers"]


def test_archive_to_a_directory_is_one_clear_error(
    hello: Path, tmp_path: Path, vinci: VinciRunner
) -> None:
    run = vinci(
        "build", hello, "--output", f"oci-archive:{tmp_path}",
        env={"VINCI_CACHE_DIR": str(tmp_path / "c")}, check=False,
    )  # fmt: skip
    assert run.returncode == 1
    assert (
        run.stderr.strip()
        == f"vinci: {tmp_path} is a directory; an archive output needs a file path"
    )


@pytest.mark.slow
def test_archive_loads_and_runs_with_podman_load(
    hello: Path, tmp_path: Path, vinci: VinciRunner
) -> None:
    archive = tmp_path / "hello.tar"
    _build(vinci, hello, f"docker-archive:{archive}", tmp_path / "c")
    loaded, out = podman_load_run(archive, IMAGE, workdir=tmp_path / "podman")
    assert IMAGE in loaded
    assert out == "Hello, World!\n"


@pytest.mark.slow
def test_archive_loads_with_the_docker_cli(hello: Path, tmp_path: Path, vinci: VinciRunner) -> None:
    require_tool("docker", "podman")
    archive = tmp_path / "hello.tar"
    _build(vinci, hello, f"docker-archive:{archive}", tmp_path / "c")
    with tarfile.open(archive) as tar:
        config = json.loads(tar.extractfile("manifest.json").read())[0]["Config"]  # type: ignore[union-attr]
    loaded, image_id = docker_load_via_podman(archive, IMAGE, workdir=tmp_path / "docker")
    assert IMAGE in loaded
    assert image_id == "sha256:" + config.removeprefix("blobs/sha256/")
