"""`import` of local images: an OCI layout, an OCI archive and a docker-archive, all made by
skopeo (not vinci). Base layers keep their digests; every blob and diff_id is verified; an index
is resolved to the spec's platform; the result is checked by umoci."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
from conftest import Run, VinciRunner
from support.verify import layout_manifest, podman_run, skopeo_copy, umoci_unpack


def _env(tmp_path: Path) -> dict[str, str]:
    return {"VINCI_CACHE_DIR": str(tmp_path / "cache")}


def _spec(directory: Path, import_item: str, *, extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    spec = directory / "vinci.yaml"
    spec.write_text(
        "spec-version: v1\n"
        "config:\n"
        "  cmd: [/bin/sh, -c, 'cat /etc/hello /etc/extra']\n"
        "layers:\n"
        f"  - import: {import_item}\n"
        '  - file: {path: /etc/extra, contents: "extra\\n"}\n' + extra
    )
    return spec


def _build(vinci: VinciRunner, spec: Path, out: Path, tmp_path: Path, check: bool = True) -> Run:
    return vinci("build", spec, "--json", "--output", f"oci:{out}", env=_env(tmp_path), check=check)


def _layers(run: Run) -> list[dict[str, Any]]:
    layers: list[dict[str, Any]] = json.loads(run.stdout)["layers"]
    return layers


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


@pytest.fixture
def base(busybox_layout: Path, tmp_path: Path) -> Path:
    """A private copy of the skopeo-made busybox layout (tag v1)."""
    dest = tmp_path / "base.oci"
    shutil.copytree(busybox_layout, dest)
    return dest


def _source_layer(layout: Path) -> dict[str, Any]:
    _, manifest = layout_manifest(layout, "v1")
    layer: dict[str, Any] = manifest["layers"][0]
    return layer


def test_oci_layout_keeps_layer_digests(
    base: Path, tmp_path: Path, vinci: VinciRunner, busybox_path: Path
) -> None:
    spec = _spec(tmp_path / "s", f"{{path: {base}, inherit-config: true}}")
    out = tmp_path / "out.oci"
    run = _build(vinci, spec, out, tmp_path)
    layers = _layers(run)
    source = _source_layer(base)
    assert layers[0]["digest"] == source["digest"]  # byte for byte: no recompression
    assert layers[0]["media_type"] == source["mediaType"]
    assert layers[0]["size"] == source["size"]
    assert not layers[0]["cache_hit"]

    rootfs = umoci_unpack(out, "latest", tmp_path / "bundle")
    assert (rootfs / "bin" / "busybox").read_bytes() == busybox_path.read_bytes()
    assert (rootfs / "etc" / "hello").read_bytes() == b"hello\n"
    assert (rootfs / "etc" / "extra").read_bytes() == b"extra\n"
    # inherit-config: the base's Env survives under our Cmd.
    _, manifest = layout_manifest(out, "latest")
    config = json.loads(_blob(out, manifest["config"]["digest"]).read_bytes())
    assert config["config"]["Env"] == ["PATH=/bin"]
    assert config["config"]["Cmd"] == ["/bin/sh", "-c", "cat /etc/hello /etc/extra"]

    # Unchanged import: a cache hit that no longer needs the layer bytes at all.
    _blob(base, source["digest"]).unlink()
    again = _build(vinci, spec, tmp_path / "again.oci", tmp_path)
    assert _layers(again)[0]["cache_hit"]
    assert json.loads(again.stdout)["manifest_digest"] == json.loads(run.stdout)["manifest_digest"]


def test_oci_archive_keeps_layer_digests(base: Path, tmp_path: Path, vinci: VinciRunner) -> None:
    archive = tmp_path / "base-oci.tar"
    skopeo_copy(f"oci:{base}:v1", f"oci-archive:{archive}:v1")
    spec = _spec(tmp_path / "s", f"{{path: {archive}, tag: v1}}")
    out = tmp_path / "out.oci"
    layers = _layers(_build(vinci, spec, out, tmp_path))
    assert layers[0]["digest"] == _source_layer(base)["digest"]
    rootfs = umoci_unpack(out, "latest", tmp_path / "bundle")
    assert (rootfs / "etc" / "hello").read_bytes() == b"hello\n"


def test_docker_archive_layers_enter_uncompressed_with_digest_equal_diff_id(
    base: Path, tmp_path: Path, vinci: VinciRunner
) -> None:
    archive = tmp_path / "base-docker.tar"
    skopeo_copy(f"oci:{base}:v1", f"docker-archive:{archive}:test/busybox:v1")
    _, manifest = layout_manifest(base, "v1")
    diff_id = json.loads(_blob(base, manifest["config"]["digest"]).read_bytes())["rootfs"][
        "diff_ids"
    ][0]
    spec = _spec(tmp_path / "s", f"{{path: {archive}, tag: v1}}")
    out = tmp_path / "out.oci"
    layers = _layers(_build(vinci, spec, out, tmp_path))
    assert layers[0]["digest"] == layers[0]["diff_id"] == diff_id
    assert layers[0]["media_type"] == "application/vnd.oci.image.layer.v1.tar"
    rootfs = umoci_unpack(out, "latest", tmp_path / "bundle")
    assert (rootfs / "etc" / "hello").read_bytes() == b"hello\n"


def _docker_archive(path: Path, layers: list[bytes], config: dict[str, Any]) -> None:
    """A hand-made docker-archive: manifest.json, config.json and layer files."""
    names = [f"layer{i}.tar" for i in range(len(layers))]
    manifest = [{"Config": "config.json", "RepoTags": ["hand/made:v1"], "Layers": names}]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        files = [*zip(names, layers, strict=True), ("config.json", json.dumps(config).encode())]
        files.append(("manifest.json", json.dumps(manifest).encode()))
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _tiny_layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("etc/hello")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    return buf.getvalue()


def _config(diff_ids: list[str], arch: str = "amd64") -> dict[str, Any]:
    return {
        "architecture": arch,
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }


def test_docker_archive_with_gzip_layer_keeps_compressed_bytes(
    tmp_path: Path, vinci: VinciRunner
) -> None:
    raw = _tiny_layer()
    compressed = gzip.compress(raw, mtime=0)
    archive = tmp_path / "gz.tar"
    _docker_archive(archive, [compressed], _config(["sha256:" + hashlib.sha256(raw).hexdigest()]))
    out = tmp_path / "out.oci"
    layers = _layers(_build(vinci, _spec(tmp_path / "s", str(archive)), out, tmp_path))
    assert layers[0]["digest"] == "sha256:" + hashlib.sha256(compressed).hexdigest()
    assert layers[0]["diff_id"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert layers[0]["media_type"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    umoci_unpack(out, "latest", tmp_path / "bundle")


def _one_line_error(run: Run, spec: Path) -> str:
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"vinci: {spec}:")  # the spec position comes first
    return lines[0]


def test_tampered_layer_blob_is_a_corrupt_image_naming_the_blob(
    base: Path, tmp_path: Path, vinci: VinciRunner
) -> None:
    digest = _source_layer(base)["digest"]
    blob = _blob(base, digest)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    spec = _spec(tmp_path / "s", str(base))
    run = _build(vinci, spec, tmp_path / "out.oci", tmp_path, check=False)
    line = _one_line_error(run, spec)
    assert "corrupt imported image" in line
    assert digest in line
    # Nothing half-verified was kept: the cache holds no blob with the bad bytes.
    bad = "sha256:" + hashlib.sha256(bytes(data)).hexdigest()
    assert not (
        tmp_path / "cache" / "v1" / "blobs" / "sha256" / bad.removeprefix("sha256:")
    ).exists()


def test_wrong_diff_id_is_a_corrupt_image(tmp_path: Path, vinci: VinciRunner) -> None:
    archive = tmp_path / "bad.tar"
    _docker_archive(archive, [_tiny_layer()], _config(["sha256:" + "0" * 64]))
    spec = _spec(tmp_path / "s", str(archive))
    line = _one_line_error(_build(vinci, spec, tmp_path / "o", tmp_path, check=False), spec)
    assert "corrupt imported image" in line and "diff_id" in line and "0" * 64 in line


def _index_layout(base: Path, platforms: list[dict[str, str]]) -> None:
    """Turn the layout's v1 into an image index listing the one image under `platforms`."""
    digest, _ = layout_manifest(base, "v1")
    size = _blob(base, digest).stat().st_size
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": size,
                "platform": p,
            }
            for p in platforms
        ],
    }
    data = json.dumps(index).encode()
    index_digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _blob(base, index_digest).write_bytes(data)
    top = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": index_digest,
                "size": len(data),
                "annotations": {"org.opencontainers.image.ref.name": "v1"},
            }
        ],
    }
    (base / "index.json").write_text(json.dumps(top))


def test_index_is_resolved_to_the_spec_platform(
    base: Path, tmp_path: Path, vinci: VinciRunner
) -> None:
    _index_layout(
        base,
        [{"os": "linux", "architecture": "arm64"}, {"os": "linux", "architecture": "amd64"}],
    )
    layers = _layers(_build(vinci, _spec(tmp_path / "s", str(base)), tmp_path / "o", tmp_path))
    assert layers[0]["digest"] == _source_layer_of_manifest(base)


def _source_layer_of_manifest(base: Path) -> str:
    index = json.loads((base / "index.json").read_text())
    inner = json.loads(_blob(base, index["manifests"][0]["digest"]).read_bytes())
    manifest = json.loads(_blob(base, inner["manifests"][0]["digest"]).read_bytes())
    digest: str = manifest["layers"][0]["digest"]
    return digest


def test_index_without_the_platform_is_no_compatible_image(
    base: Path, tmp_path: Path, vinci: VinciRunner
) -> None:
    _index_layout(
        base,
        [
            {"os": "linux", "architecture": "arm64"},
            {"os": "linux", "architecture": "arm", "variant": "v7"},
        ],
    )
    spec = _spec(tmp_path / "s", str(base))
    line = _one_line_error(_build(vinci, spec, tmp_path / "o", tmp_path, check=False), spec)
    assert "no image for linux/amd64" in line
    assert "linux/arm64" in line and "linux/arm/v7" in line


def test_image_config_for_another_platform_is_refused(tmp_path: Path, vinci: VinciRunner) -> None:
    raw = _tiny_layer()
    archive = tmp_path / "arm.tar"
    _docker_archive(
        archive, [raw], _config(["sha256:" + hashlib.sha256(raw).hexdigest()], arch="arm64")
    )
    spec = _spec(tmp_path / "s", str(archive))
    line = _one_line_error(_build(vinci, spec, tmp_path / "o", tmp_path, check=False), spec)
    assert "linux/arm64" in line and "linux/amd64" in line


def test_layout_with_several_images_needs_a_tag(
    base: Path, tmp_path: Path, vinci: VinciRunner, busybox_path: Path
) -> None:
    from support.verify import build_busybox_layout

    other = build_busybox_layout(
        tmp_path / "other", busybox=busybox_path, tag="v2", files={"etc/v2": b"2\n"}
    )
    skopeo_copy(f"oci:{other}:v2", f"oci:{base}:v2")
    spec = _spec(tmp_path / "s", str(base))
    line = _one_line_error(_build(vinci, spec, tmp_path / "o", tmp_path, check=False), spec)
    assert "v1" in line and "v2" in line and "tag" in line

    tagged = _spec(tmp_path / "t", f"{{path: {base}, tag: v2}}")
    out = tmp_path / "out.oci"
    _build(vinci, tagged, out, tmp_path)
    assert (umoci_unpack(out, "latest", tmp_path / "b") / "etc" / "v2").read_bytes() == b"2\n"

    missing = _spec(tmp_path / "m", f"{{path: {base}, tag: v9}}")
    line = _one_line_error(_build(vinci, missing, tmp_path / "o", tmp_path, check=False), missing)
    assert "no image tagged 'v9'" in line


@pytest.mark.slow
def test_imported_docker_archive_runs_under_podman(
    base: Path, tmp_path: Path, vinci: VinciRunner
) -> None:
    archive = tmp_path / "base-docker.tar"
    skopeo_copy(f"oci:{base}:v1", f"docker-archive:{archive}:test/busybox:v1")
    out = tmp_path / "out.oci"
    _build(
        vinci, _spec(tmp_path / "s", f"{{path: {archive}, inherit-config: true}}"), out, tmp_path
    )
    proc = podman_run(f"oci:{out}:latest", workdir=tmp_path / "podman")
    assert proc.stdout == "hello\nextra\n"


def _base_with_history(dest: Path) -> list[dict[str, Any]]:
    """An OCI layout written by hand (no vinci code): one plain-tar layer, and a history with
    an `empty_layer` entry, as Dockerfile-built images have. Returns that history."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("etc/hello")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    layer_bytes = layer.getvalue()
    history = [
        {"created": "2024-01-01T00:00:00Z", "created_by": "ENV GREETING=hi", "empty_layer": True},
        {"created": "2024-01-01T00:00:01Z", "created_by": "COPY hello /etc/hello"},
    ]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["GREETING=hi"]},
        "rootfs": {
            "type": "layers",
            "diff_ids": [f"sha256:{hashlib.sha256(layer_bytes).hexdigest()}"],
        },
        "history": history,
    }
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}"

    config_bytes = json.dumps(config).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": put(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": put(layer_bytes),
                "size": len(layer_bytes),
            }
        ],
    }
    manifest_bytes = json.dumps(manifest).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": put(manifest_bytes),
                "size": len(manifest_bytes),
            }
        ],
    }
    (dest / "index.json").write_text(json.dumps(index))
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return history


def test_how_an_import_path_is_spelled_never_changes_the_image(
    tmp_path: Path, vinci: VinciRunner
) -> None:
    """One base image named five ways gives one digest, whatever the cache already holds, and
    the base's own history (its empty_layer entry too) stands ahead of ours."""
    project = tmp_path / "project"
    project.mkdir()
    history = _base_with_history(project / "base.oci")
    spellings = ["./base.oci", "base.oci", "./base.oci/", str(project / "base.oci"), "~/base.oci"]
    digests = set()
    for i, spelling in enumerate(spellings):
        spec = project / f"spec{i}.yaml"
        spec.write_text(
            "spec-version: v1\n"
            "layers:\n"
            f"  - import: {json.dumps(spelling)}\n"
            '  - file: {path: /etc/extra, contents: "extra\\n"}\n'
        )
        out = tmp_path / f"out{i}"
        # Every spelling builds into one shared cache: what the cache met first never shows.
        env = {"VINCI_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(project)}
        run = vinci("build", spec, "--output", f"oci:{out}", env=env)
        digests.add(run.stdout.strip().splitlines()[-1])
        _, manifest = layout_manifest(out, "latest")
        config = json.loads(_blob(out, manifest["config"]["digest"]).read_text())
        assert config["history"][:2] == history
        assert config["history"][2]["created_by"] == "vinci: file /etc/extra"
        assert str(project) not in json.dumps(config)
    assert len(digests) == 1, digests
