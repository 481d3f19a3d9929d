"""`import-oci` from a real registry, pinned by digest, and `vinci resolve` for the pinning: the
base layers land in the cache with their source repository, so pushing the derived image to
another repository of the same registry mounts them (requests counted by the fault proxy)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import Run, VinciRunner
from support.faultproxy import FaultProxy
from support.registry import RegistryServer
from support.verify import layout_manifest, podman_run, skopeo_copy, skopeo_inspect_raw

from engine.errors import ReferenceNotByDigest
from engine.oci.descriptor import Platform
from engine.oci.reference import parse_reference


def _env(tmp_path: Path, cache: str = "cache") -> dict[str, str]:
    return {"VINCI_CACHE_DIR": str(tmp_path / cache), "DOCKER_CONFIG": str(tmp_path / "docker")}


def _derived_spec(directory: Path, pinned: str, image: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    spec = directory / "vinci.yaml"
    spec.write_text(
        "spec-version: v1\n"
        f"image: {image}\n"
        "config:\n"
        "  cmd: [/bin/sh, -c, 'cat /etc/hello /etc/extra']\n"
        "layers:\n"
        f"  - import-oci: {{ref: {pinned}, inherit-config: true}}\n"
        '  - file: {path: /etc/extra, contents: "extra\\n"}\n'
    )
    return spec


def _base_in(registry_host: str, busybox_layout: Path, repo: str) -> str:
    skopeo_copy(f"oci:{busybox_layout}:v1", f"docker://{registry_host}/{repo}:v1")
    return f"{registry_host}/{repo}:v1"


def test_resolve_prints_the_digest_to_pin(
    tmp_path: Path, vinci: VinciRunner, registry: RegistryServer, busybox_layout: Path
) -> None:
    ref = _base_in(registry.host, busybox_layout, "resolve/base")
    run = vinci("resolve", ref, env=_env(tmp_path))
    raw = skopeo_inspect_raw(registry.docker_ref("resolve/base", "v1"))
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert run.stdout.splitlines()[0] == f"{registry.host}/resolve/base@{digest}"
    data = json.loads(vinci("resolve", ref, "--json", env=_env(tmp_path)).stdout)
    assert data["digest"] == digest
    assert data["platforms"] == ["linux/amd64"]

    other = vinci("resolve", ref, "--platform", "linux/arm64", env=_env(tmp_path), check=False)
    assert other.returncode == 1
    assert "linux/amd64" in other.stderr and "linux/arm64" in other.stderr


def test_resolve_an_index_shows_the_platform_manifest(
    tmp_path: Path, vinci: VinciRunner, registry: RegistryServer, busybox_layout: Path
) -> None:
    base = _base_in(registry.host, busybox_layout, "resolve/multi")
    manifest_digest, _ = layout_manifest(busybox_layout, "v1")
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(skopeo_inspect_raw(f"docker://{base}")),
                "platform": {"os": "linux", "architecture": "amd64"},
            }
        ],
    }
    index_bytes = json.dumps(index).encode()
    import httpx

    put = httpx.put(
        f"{registry.url}/v2/resolve/multi/manifests/multi",
        content=index_bytes,
        headers={"Content-Type": "application/vnd.oci.image.index.v1+json"},
    )
    assert put.status_code == 201, put.text
    run = vinci("resolve", f"{registry.host}/resolve/multi:multi", env=_env(tmp_path))
    lines = run.stdout.splitlines()
    index_digest = "sha256:" + hashlib.sha256(index_bytes).hexdigest()
    assert lines[0] == f"{registry.host}/resolve/multi@{index_digest}"
    assert lines[1].split() == ["linux/amd64:", manifest_digest]

    # Pinned by the index digest, an import resolves it to the platform's image.
    spec = _derived_spec(tmp_path / "s", lines[0], f"{registry.host}/resolve/derived")
    out = tmp_path / "out.oci"
    build = vinci("build", spec, "--json", "--output", f"oci:{out}", env=_env(tmp_path))
    layer = json.loads(build.stdout)["layers"][0]
    assert layer["digest"] == layout_manifest(busybox_layout, "v1")[1]["layers"][0]["digest"]


def _build_json(vinci: VinciRunner, *args: str | Path, env: dict[str, str]) -> Run:
    return vinci("build", *args, "--json", env=env)


def test_import_oci_then_push_elsewhere_mounts_base_layers(
    tmp_path: Path,
    vinci: VinciRunner,
    fault_proxy: FaultProxy,
    busybox_layout: Path,
) -> None:
    host = fault_proxy.host
    base_ref = _base_in(host, busybox_layout, "base/busybox")
    pinned = vinci("resolve", base_ref, env=_env(tmp_path)).stdout.split()[0]
    assert "@sha256:" in pinned
    _, base_manifest = layout_manifest(busybox_layout, "v1")
    base_layers = [layer["digest"] for layer in base_manifest["layers"]]

    spec = _derived_spec(tmp_path / "s", pinned, f"{host}/apps/derived")
    fault_proxy.reset_counts()
    out = tmp_path / "out.oci"
    built = json.loads(
        _build_json(vinci, spec, "--output", f"oci:{out}", env=_env(tmp_path)).stdout
    )
    assert [x["digest"] for x in built["layers"][:-1]] == base_layers  # byte for byte
    assert fault_proxy.count("GET", "blob") == len(base_layers) + 1  # layers + config

    # A rebuild needs the registry no more: the pinned import is a cache hit.
    fault_proxy.reset_counts()
    again = json.loads(
        _build_json(vinci, spec, "--output", f"oci:{out}", env=_env(tmp_path)).stdout
    )
    assert again["manifest_digest"] == built["manifest_digest"]
    assert again["layers"][0]["cache_hit"]
    assert fault_proxy.count() == 0

    # Push to another repository of the same registry: base layers are mounted, not sent.
    fault_proxy.reset_counts()
    pushed = json.loads(vinci("push", spec, "--tag", "v1", "--json", env=_env(tmp_path)).stdout)[
        "push"
    ]
    assert pushed["blobs"] == {"uploaded": 2, "mounted": len(base_layers), "skipped": 0}
    assert fault_proxy.count("POST", "mount") == len(base_layers)
    assert fault_proxy.mounts_succeeded == len(base_layers)
    new_layer = built["layers"][-1]["size"]
    config_size = len(skopeo_inspect_raw(f"docker://{host}/apps/derived:v1", config=True))
    assert fault_proxy.upload_bytes == new_layer + config_size == pushed["bytes_sent"]
    raw = skopeo_inspect_raw(f"docker://{host}/apps/derived:v1")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == pushed["digest"]


def test_import_oci_in_a_fresh_cache_verifies_and_records_sources(
    tmp_path: Path, vinci: VinciRunner, registry: RegistryServer, busybox_layout: Path
) -> None:
    pinned = vinci(
        "resolve", _base_in(registry.host, busybox_layout, "src/base"), env=_env(tmp_path)
    ).stdout.split()[0]
    spec = _derived_spec(tmp_path / "s", pinned, f"{registry.host}/src/derived")
    vinci("build", spec, "--output", f"oci:{tmp_path / 'o'}", env=_env(tmp_path, "fresh"))
    layer = layout_manifest(busybox_layout, "v1")[1]["layers"][0]["digest"]
    record = json.loads(
        (
            tmp_path / "fresh" / "v1" / "sources" / f"{layer.removeprefix('sha256:')}.json"
        ).read_text()
    )
    assert {"registry": registry.host, "repository": "src/base"} in record["sources"]
    assert record["diff_id"].startswith("sha256:")


def _with_config(layout: Path, dest: Path, change: dict[str, object]) -> None:
    """A copy of `layout` (tag v1) whose config has `change` applied: new config, manifest."""
    import shutil

    shutil.copytree(layout, dest)
    _, manifest = layout_manifest(dest, "v1")
    blobs = dest / "blobs" / "sha256"
    config = json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_bytes())
    config.update(change)
    data = json.dumps(config).encode()
    (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    manifest["config"].update(digest=f"sha256:{hashlib.sha256(data).hexdigest()}", size=len(data))
    mdata = json.dumps(manifest).encode()
    (blobs / hashlib.sha256(mdata).hexdigest()).write_bytes(mdata)
    index = json.loads((dest / "index.json").read_text())
    for entry in index["manifests"]:
        entry.update(digest=f"sha256:{hashlib.sha256(mdata).hexdigest()}", size=len(mdata))
    (dest / "index.json").write_text(json.dumps(index))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}, "has diff_id"),
        ({"rootfs": {"type": "layers", "diff_ids": []}}, "config 0 diff_ids"),
        ({"architecture": "s390x"}, "the image is for linux/s390x"),
    ],
)
def test_import_oci_checks_layers_against_the_config_fetched_alongside(
    tmp_path: Path,
    vinci: VinciRunner,
    registry: RegistryServer,
    busybox_layout: Path,
    change: dict[str, object],
    message: str,
) -> None:
    # The config is fetched while the layers download: a layer is still checked against it
    # before it is stored, and a config that does not fit the image fails the import.
    bad = tmp_path / "bad.oci"
    _with_config(busybox_layout, bad, change)
    raw = skopeo_inspect_raw(f"docker://{_base_in(registry.host, bad, 'src/bad')}")
    pinned = f"{registry.host}/src/bad@sha256:{hashlib.sha256(raw).hexdigest()}"
    spec = _derived_spec(tmp_path / "s", pinned, f"{registry.host}/src/derived")
    run = vinci("build", spec, env=_env(tmp_path, "fresh"), check=False)
    assert run.returncode != 0 and message in run.stderr, run.stderr
    layer = layout_manifest(bad, "v1")[1]["layers"][0]["digest"].split(":")[1]
    assert not (tmp_path / "fresh" / "v1" / "blobs" / "sha256" / layer).exists()


def test_import_oci_by_tag_is_refused() -> None:
    from engine.builder.imports import import_layers
    from engine.cache.store import BlobStore
    from engine.errors import Position
    from engine.events import discard
    from engine.spec.model import ImportOCISpec

    node = ImportOCISpec(
        "layers[0].import-oci", Position("v.yaml", 3, 5), parse_reference("127.0.0.1:1/x:v1"), False
    )
    with pytest.raises(ReferenceNotByDigest) as err:
        import_layers(
            node, BlobStore(Path("/nonexistent-never-created")), Platform(), 0, discard, None
        )
    assert str(err.value).startswith("v.yaml:3:5: layers[0].import-oci: ")
    assert "vinci resolve" in str(err.value)


@pytest.mark.slow
def test_derived_image_runs_under_podman(
    tmp_path: Path, vinci: VinciRunner, registry: RegistryServer, busybox_layout: Path
) -> None:
    pinned = vinci(
        "resolve", _base_in(registry.host, busybox_layout, "run/base"), env=_env(tmp_path)
    ).stdout.split()[0]
    spec = _derived_spec(tmp_path / "s", pinned, f"{registry.host}/run/derived")
    vinci("push", spec, "--tag", "v1", env=_env(tmp_path))
    proc = podman_run(registry.ref("run/derived", "v1"), workdir=tmp_path / "podman")
    assert proc.stdout == "hello\nextra\n"
