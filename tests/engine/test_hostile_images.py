"""Hostile local images (docs/reliability.md, "Local images"): layouts and archives whose
blobs lie about their size, are FIFOs or devices, are too large to be metadata, or hold tar
headers no honest writer makes. Each is refused through the command line with one line on
stderr and exit 1, in bounded time (the run's timeout) and memory (peak RSS under 200 MB)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from support.measured import Measured, run_measured

pytestmark = pytest.mark.hostile

PEAK_MIB = 200
TAR = "application/vnd.oci.image.layer.v1.tar"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_layout(root: Path, layers: list[bytes]) -> dict[str, str]:
    """An OCI layout at `root` holding one image of uncompressed `layers`; returns the file of
    each of its blobs by role: "layer0"…, "config", "manifest"."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    where: dict[str, str] = {}

    def put(role: str, data: bytes) -> dict[str, object]:
        digest = _sha(data)
        (blobs / digest).write_bytes(data)
        where[role] = f"blobs/sha256/{digest}"
        return {"digest": f"sha256:{digest}", "size": len(data)}

    descriptors = [{"mediaType": TAR, **put(f"layer{i}", data)} for i, data in enumerate(layers)]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{_sha(x)}" for x in layers]},
    }
    config_d = put("config", json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_d},
        "layers": descriptors,
    }
    manifest_d = put("manifest", json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest_d}],
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return where


def import_spec(project: Path, image: str) -> None:
    (project / "vinci.yaml").write_text(f"spec-version: v1\nlayers:\n  - import: {image}\n")


def refused(run: Measured, *needles: str) -> str:
    assert run.returncode == 1, run.stderr
    line = run.one_line_error()
    for needle in needles:
        assert needle in line, line
    assert run.peak_mib < PEAK_MIB, run.peak_mib
    return line


def build(project: Path) -> Measured:
    return run_measured("build", "--cache-dir", "cache", "-q", "-o", "oci:out", cwd=project)


def test_a_layer_larger_than_its_descriptor_is_never_copied_past_it(tmp_path: Path) -> None:
    """Finding 8: the layer blob is a 20 GB sparse file; its descriptor says a few KiB."""
    where = write_layout(tmp_path / "img", [layer_tar({"etc/hello": b"hello\n"})])
    blob = tmp_path / "img" / where["layer0"]
    os.truncate(blob, 20 * 10**9)
    import_spec(tmp_path, "./img")
    refused(build(tmp_path), "larger than", "its descriptor says")
    assert not (tmp_path / "out").exists()
    inspected = run_measured("inspect", "img", "--layer", "0", cwd=tmp_path)
    refused(inspected, "larger than", "its descriptor says")


def _sparse_member(archive: Path, member: str, real_size: int) -> None:
    """Turn `member` of the tar at `archive` into a GNU sparse member claiming `real_size`
    bytes: what tarfile would expand, block of zeros by block, to the disk."""
    with tarfile.open(archive) as tar:
        offset = tar.getmember(member).offset
    with open(archive, "r+b") as f:
        f.seek(offset)
        block = bytearray(f.read(512))
        block[156:157] = b"S"
        block[483:495] = b"%011o\0" % real_size  # the GNU header's realsize field
        block[148:156] = b" " * 8
        block[148:156] = b"%06o\0 " % sum(block)
        f.seek(offset)
        f.write(block)


def test_an_archive_member_that_is_gnu_sparse_is_refused(tmp_path: Path) -> None:
    """Finding 8: a few-KB OCI archive whose layer member is GNU sparse, 20 GB expanded."""
    where = write_layout(tmp_path / "img", [layer_tar({"etc/hello": b"hello\n"})])
    archive = tmp_path / "img.tar"
    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT) as tar:
        for name in ("oci-layout", "index.json", *where.values()):
            tar.add(tmp_path / "img" / name, arcname=name)
    _sparse_member(archive, where["layer0"], 20 * 10**9)
    assert archive.stat().st_size < 64 << 10
    import_spec(tmp_path, "./img.tar")
    refused(build(tmp_path), where["layer0"], "not a regular file")
    refused(run_measured("inspect", "img.tar", "--layer", "0", cwd=tmp_path), "not a regular file")


@pytest.mark.parametrize("role", ["manifest", "config"])
def test_a_metadata_blob_that_is_a_fifo_is_refused_by_name(tmp_path: Path, role: str) -> None:
    """Finding 9: a FIFO blob hung build and inspect for ever."""
    where = write_layout(tmp_path / "img", [layer_tar({"etc/hello": b"hello\n"})])
    blob = tmp_path / "img" / where[role]
    blob.unlink()
    os.mkfifo(blob)
    import_spec(tmp_path, "./img")
    refused(build(tmp_path), where[role], "FIFO")
    refused(run_measured("inspect", "img", cwd=tmp_path), where[role], "FIFO")


@pytest.mark.parametrize("role", ["manifest", "config", "layer0"])
def test_a_blob_linked_to_dev_zero_is_refused_by_name(tmp_path: Path, role: str) -> None:
    """Finding 9: a blob that is a symlink to /dev/zero ended in MemoryError."""
    where = write_layout(tmp_path / "img", [layer_tar({"etc/hello": b"hello\n"})])
    blob = tmp_path / "img" / where[role]
    blob.unlink()
    blob.symlink_to("/dev/zero")
    import_spec(tmp_path, "./img")
    refused(build(tmp_path), where[role], "character device")
    args = ["inspect", "img", "--layer", "0"] if role == "layer0" else ["inspect", "img"]
    refused(run_measured(*args, cwd=tmp_path), where[role], "character device")


def test_inspect_of_a_fifo_is_refused(tmp_path: Path) -> None:
    """Finding 9: `vinci inspect FIFO` waited for a writer for ever. It is no image and no
    spec: one line and the usage exit code."""
    os.mkfifo(tmp_path / "pipe")
    run = run_measured("inspect", "pipe", cwd=tmp_path)
    assert run.returncode == 2
    assert "not a regular file" in run.one_line_error()


def test_metadata_larger_than_4_mib_is_refused(tmp_path: Path) -> None:
    """Deliverable 3: manifests, configs and indexes are capped at 4 MiB, as containerd does."""
    where = write_layout(tmp_path / "img", [layer_tar({"etc/hello": b"hello\n"})])
    os.truncate(tmp_path / "img" / where["config"], 5 << 20)
    import_spec(tmp_path, "./img")
    refused(build(tmp_path), where["config"], "larger than 4 MiB")
    os.truncate(tmp_path / "img" / "index.json", 64 << 20)
    refused(run_measured("inspect", "img", cwd=tmp_path), "index.json", "larger than 4 MiB")


def _negative_size(tar: bytes) -> bytes:
    """`tar` with its first header's size in GNU base-256, negative."""
    block = bytearray(tar[:512])
    block[124:136] = b"\xff" + b"\0" * 10 + b"\x05"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block) + tar[512:]


def test_diff_of_a_layer_with_a_negative_size_is_one_line(tmp_path: Path) -> None:
    """Finding 10: `vinci diff` read a base-256 negative size as an internal error."""
    write_layout(tmp_path / "a", [layer_tar({"etc/hello": b"hello\n"})])
    bad = _negative_size(layer_tar({"etc/hello": b"bye\n"}))
    write_layout(tmp_path / "b", [bad])
    refused(run_measured("diff", "a", "b", cwd=tmp_path), "negative size")
    refused(run_measured("inspect", "b", "--layer", "0", cwd=tmp_path), "negative size")
