"""A gzip layer of several members, as other tools write them, is read whole everywhere.

vinci's default gzip writes a member per 1 MiB block, eStargz layers are made so, and
`cat a.gz b.gz` is a valid gzip file; a reader that stops after the first member sees a
truncated tar. Layers here are made by GNU gzip and concatenated, and by pigz, in OCI
layouts written by hand; vinci imports them (verifying every diff_id), diffs, inspects and
keeps them in its cache, all through the CLI.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import subprocess
import tarfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from conftest import VinciRunner
from support.verify import require_tool, umoci_unpack

FILES = {
    "etc/first.txt": b"".join(b"first member line %d\n" % i for i in range(30000)),
    "opt/big.bin": hashlib.sha256(b"seed").digest() * 40000,  # ~1.3 MB
    "usr/share/last.txt": b"the last file, in the last member\n",
}


def _tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(FILES.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _tool(argv: list[str], data: bytes) -> bytes:
    return subprocess.run(argv, input=data, capture_output=True, check=True).stdout


def _cat_members(tar: bytes) -> bytes:
    """`gzip -n` of three pieces of the tar, concatenated: three members, the cuts falling
    inside files."""
    cuts = [0, len(tar) // 3, 2 * len(tar) // 3 + 777, len(tar)]
    return b"".join(_tool(["gzip", "-n", "-6"], tar[a:b]) for a, b in itertools.pairwise(cuts))


def _pigz(tar: bytes) -> bytes:
    return _tool(["pigz", "-6", "-n", "-b", "128"], tar)


def _write_blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _layout(path: Path, layer: bytes, tar: bytes) -> Path:
    """An OCI image layout holding one image, tag v1, whose one layer is `layer`."""
    (path / "blobs" / "sha256").mkdir(parents=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(tar).hexdigest()}"]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **_write_blob(path, json.dumps(config).encode()),
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_write_blob(path, layer)}
        ],
    }
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **_write_blob(path, json.dumps(manifest).encode()),
                "annotations": {"org.opencontainers.image.ref.name": "v1"},
            }
        ],
    }
    (path / "index.json").write_text(json.dumps(index))
    return path


@pytest.fixture
def layouts(tmp_path: Path) -> dict[str, Path]:
    require_tool("gzip", "pigz")
    tar = _tar()
    members = _cat_members(tar)
    # It really is several members: a one-member reader stops early.

    assert len(zlib.decompressobj(31).decompress(members)) < len(tar)
    return {
        "cat": _layout(tmp_path / "cat.oci", members, tar),
        "pigz": _layout(tmp_path / "pigz.oci", _pigz(tar), tar),
    }


@pytest.mark.parametrize("made_by", ["cat", "pigz"])
def test_a_layer_another_tool_wrote_imports_whole(
    made_by: str, layouts: dict[str, Path], tmp_path: Path, vinci: VinciRunner
) -> None:
    src = layouts[made_by]
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    (spec_dir / "vinci.yaml").write_text(
        "spec-version: v1\n"
        "layers:\n"
        f"  - import: {{path: {src}}}\n"
        '  - file: {path: /etc/extra, contents: "extra\\n"}\n'
    )
    env = {"VINCI_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "out.oci"
    run = vinci("build", spec_dir, "--json", "-o", f"oci:{out}", env=env)
    layer = json.loads(run.stdout)["layers"][0]
    source = json.loads((src / "index.json").read_text())["manifests"][0]
    manifest = json.loads(
        (src / "blobs/sha256" / source["digest"].removeprefix("sha256:")).read_text()
    )
    assert layer["digest"] == manifest["layers"][0]["digest"]  # kept byte for byte
    rootfs = umoci_unpack(out, "latest", tmp_path / "bundle")
    for name, data in FILES.items():
        assert (rootfs / name).read_bytes() == data

    # Every file of the layer, the last member's too, and its bytes.
    listing = json.loads(vinci("inspect", src, "--layer", "0", "--json", env=env).stdout)
    paths = json.dumps(listing)
    assert all(f"/{name}" in paths for name in FILES)
    cat = vinci("inspect", src, "--layer", "0", "--cat", "/usr/share/last.txt", env=env)
    assert cat.stdout.encode() == FILES["usr/share/last.txt"]

    verified = vinci("cache", "verify", "--json", env=env)
    assert json.loads(verified.stdout)["problems"] == []


def test_two_writers_of_one_tar_diff_as_recompressed(
    layouts: dict[str, Path], tmp_path: Path, vinci: VinciRunner
) -> None:
    env = {"VINCI_CACHE_DIR": str(tmp_path / "cache")}
    run = vinci("diff", layouts["cat"], layouts["pigz"], "--json", env=env, check=False)
    data = json.loads(run.stdout)
    assert data["fields"] == []  # same diff_ids: both read to the same tar
    [layer] = data["layers"]
    assert layer["change"] == "recompressed"
    assert layer["a"]["diff_id"] == layer["b"]["diff_id"]
    assert layer["files"] == []
