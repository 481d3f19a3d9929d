"""Pushing to a real registry (Debian's docker-registry on 127.0.0.1), checked by skopeo, umoci
and podman, with the traffic counted by the fault proxy."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import VinciRunner
from support.faultproxy import FaultProxy
from support.registry import RegistryServer
from support.verify import podman_run, skopeo_copy, skopeo_inspect_raw, umoci_unpack


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # A private cache and docker config: nothing from the machine leaks into the test.
    return {
        "VINCI_CACHE_DIR": str(tmp_path / "cache"),
        "DOCKER_CONFIG": str(tmp_path / "docker"),
        **extra,
    }


def test_push_hello_verifies_with_skopeo_and_umoci(
    hello: Path, tmp_path: Path, vinci: VinciRunner, registry: RegistryServer, busybox_path: Path
) -> None:
    repo = f"{registry.host}/push/hello"
    run = vinci(
        "build",
        hello,
        "--output",
        f"oci:{tmp_path / 'out.oci'}",
        "--push",
        "--image",
        repo,
        "--tag",
        "v1",
        "--tag",
        "stable",
        env=_env(tmp_path),
    )
    digest = run.digest
    assert f"pushed {repo}:v1, {repo}:stable" in run.stderr

    # The bytes the registry serves hash to the digest vinci printed, under both tags.
    for tag in ("v1", "stable"):
        raw = skopeo_inspect_raw(registry.docker_ref("push/hello", tag))
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    config = json.loads(skopeo_inspect_raw(registry.docker_ref("push/hello", "v1"), config=True))
    assert config["config"]["Entrypoint"] == ["/cat", "/message"]

    # Back into an OCI layout by an independent client; umoci re-checks every diff_id.
    layout = tmp_path / "back"
    skopeo_copy(registry.docker_ref("push/hello", "v1"), f"oci:{layout}:v1")
    rootfs = umoci_unpack(layout, "v1", tmp_path / "bundle")
    assert (rootfs / "cat").read_bytes() == busybox_path.read_bytes()
    assert (rootfs / "message").read_bytes() == b"Hello, World!\n"


def test_second_push_sends_no_blob_bytes(
    hello: Path, tmp_path: Path, vinci: VinciRunner, fault_proxy: FaultProxy
) -> None:
    ref = f"{fault_proxy.host}/push/again:v1"
    first = vinci("push", hello, "--image", ref, "--json", env=_env(tmp_path))
    sent = json.loads(first.stdout)["push"]
    assert sent["blobs"] == {"uploaded": 3, "mounted": 0, "skipped": 0}
    assert fault_proxy.upload_bytes == sent["bytes_sent"] > 1_000_000

    fault_proxy.reset_counts()
    second = vinci("push", hello, "--image", ref, "--json", env=_env(tmp_path))
    again = json.loads(second.stdout)["push"]
    assert again["blobs"] == {"uploaded": 0, "mounted": 0, "skipped": 3}
    assert again["bytes_sent"] == 0
    # Counted on the wire: no upload request at all, only HEADs and the manifest.
    assert fault_proxy.upload_bytes == 0
    assert fault_proxy.count(kind="upload") == 0
    assert fault_proxy.count("HEAD", "blob") == 3
    assert fault_proxy.count("PUT", "manifest") == 1
    assert again["digest"] == sent["digest"]


def test_push_to_another_repository_mounts(
    hello: Path, tmp_path: Path, vinci: VinciRunner, fault_proxy: FaultProxy
) -> None:
    vinci("push", hello, "--image", f"{fault_proxy.host}/mount/a", env=_env(tmp_path))
    fault_proxy.reset_counts()
    run = vinci(
        "push", hello, "--image", f"{fault_proxy.host}/mount/b", "--json", env=_env(tmp_path)
    )
    push = json.loads(run.stdout)["push"]
    assert push["blobs"] == {"uploaded": 0, "mounted": 3, "skipped": 0}
    assert fault_proxy.mounts_succeeded == 3
    assert fault_proxy.upload_bytes == 0


def test_push_names_default_to_spec_image_and_latest(
    tmp_path: Path, vinci: VinciRunner, registry: RegistryServer
) -> None:
    spec = tmp_path / "vinci.yaml"
    spec.write_text(
        "spec-version: v1\n"
        f"image: {registry.host}/named/by-spec:1.0\n"
        "layers:\n"
        "  - file: {path: /hi, contents: hi}\n"
    )
    run = vinci("push", spec, env=_env(tmp_path))
    raw = skopeo_inspect_raw(registry.docker_ref("named/by-spec", "1.0"))
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == run.digest


def test_push_without_image_is_one_clear_line(tmp_path: Path, vinci: VinciRunner) -> None:
    spec = tmp_path / "vinci.yaml"
    spec.write_text("spec-version: v1\nlayers:\n  - file: {path: /hi, contents: hi}\n")
    run = vinci("push", spec, env=_env(tmp_path), check=False)
    assert run.returncode == 2  # no destination: a usage error
    assert run.stderr.strip().count("\n") == 0
    assert "names no `image`" in run.stderr and "--image" in run.stderr
    assert "Traceback" not in run.stderr


def test_unreachable_registry_is_one_clear_line(
    hello: Path, tmp_path: Path, vinci: VinciRunner
) -> None:
    # Port 9 (discard) is closed on loopback: connection refused, retried, then reported.
    run = vinci("push", hello, "--image", "127.0.0.1:9/nowhere/x", env=_env(tmp_path), check=False)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "127.0.0.1:9" in lines[0] and "cannot reach" in lines[0]
    assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_pushed_hello_runs_under_podman(
    hello: Path, tmp_path: Path, vinci: VinciRunner, registry: RegistryServer
) -> None:
    vinci("push", hello, "--image", f"{registry.host}/run/hello:v1", env=_env(tmp_path))
    proc = podman_run(registry.ref("run/hello", "v1"), workdir=tmp_path / "podman")
    assert proc.stdout == "Hello, World!\n"
