"""The `tar` layer kind: a rootfs tarball becomes one deterministic layer.

The same tree archived by different tools (GNU tar, Python's tarfile, busybox tar), in
different entry orders, with other mtimes and owner names, compressed or not, gives one image
digest; umoci unpacks the layer with its hardlinks, device node, setuid bit and file
capability; whiteouts are refused unless asked; `validate` refuses a file that is no tar;
`path`, `include` and `exclude` place and select entries; `vinci verify` passes on a spec with
a tar layer and accounts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import VinciRunner
from support.verify import require_tool, umoci_unpack

# security.capability for cap_net_bind_service=ep (VFS_CAP_REVISION_2), as setcap writes it.
CAPABILITY = b"\x01\x00\x00\x02\x00\x04\x00\x00" + b"\x00" * 12


def _env(tmp_path: Path) -> dict[str, str]:
    return {"VINCI_CACHE_DIR": str(tmp_path / "cache")}


def _rootfs(tmp_path: Path, busybox: Path) -> tuple[Path, bool]:
    """A small root filesystem; whether it has the device node and the capability (root)."""
    root = tmp_path / "root"
    for d in ("bin", "etc", "dev", "usr/bin"):
        (root / d).mkdir(parents=True)
    shutil.copyfile(busybox, root / "bin/busybox")
    os.chmod(root / "bin/busybox", 0o4755)
    os.link(root / "bin/busybox", root / "usr/bin/hard")
    os.symlink("busybox", root / "bin/sh")
    (root / "etc/motd").write_text("hello\n")
    privileged = os.geteuid() == 0
    if privileged:
        os.mknod(root / "dev/null", 0o20666, os.makedev(1, 3))
        os.chmod(root / "dev/null", 0o666)
        os.setxattr(root / "bin/busybox", "security.capability", CAPABILITY)
    return root, privileged


def _spec(directory: Path, item: str = "./rootfs.tar") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    spec = directory / "vinci.yaml"
    spec.write_text(
        f"spec-version: v1\nconfig:\n  entrypoint: [/bin/sh]\nlayers:\n  - tar: {item}\n"
    )
    return spec


def _gnu(root: Path, out: Path, *flags: str, reverse: bool = False) -> None:
    names = sorted("./" + str(p.relative_to(root)) for p in [root, *root.rglob("*")] if p != root)
    listing = "\n".join(["."] + (names[::-1] if reverse else names)) + "\n"
    subprocess.run(
        [
            "tar",
            "--xattrs",
            "--xattrs-include=*",
            "--no-recursion",
            "-C",
            root,
            *flags,
            "-cf",
            out,
            "-T",
            "-",
        ],
        input=listing.encode(),
        check=True,
    )


def _python(root: Path, out: Path) -> None:
    """tarfile, gzip, its own walk order, the owner named 'somebody' (uid still 0)."""
    with tarfile.open(out, "w:gz", format=tarfile.PAX_FORMAT) as tar:

        def named(info: tarfile.TarInfo) -> tarfile.TarInfo:
            info.uname, info.gname, info.mtime = "somebody", "folks", 1234567890
            if info.name.endswith("bin/busybox") and os.geteuid() == 0:
                info.pax_headers["SCHILY.xattr.security.capability"] = CAPABILITY.decode(
                    "utf-8", "surrogateescape"
                )
            return info

        tar.add(root, arcname=".", filter=named)


def _manifest_layer(layout: Path) -> str:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].removeprefix("sha256:")
    manifest = json.loads((layout / "blobs/sha256" / digest).read_text())
    layer: str = manifest["layers"][0]["digest"]
    return layer


def test_one_digest_whatever_tool_order_mtime_or_owner_names(
    vinci: VinciRunner, tmp_path: Path, busybox_path: Path
) -> None:
    require_tool("tar")
    root, privileged = _rootfs(tmp_path, busybox_path)
    makers = {
        "gnu-plain": lambda out: _gnu(root, out),
        "gnu-reversed-xz": lambda out: _gnu(
            root,
            out,
            "--xz",
            "--owner=alice:0",
            "--group=staff:0",
            "--mtime=@5",
            reverse=True,
        ),
        "gnu-zstd": lambda out: _gnu(root, out, "--zstd", "--sort=name", "--mtime=@99"),
        "python-gzip": lambda out: _python(root, out),
    }
    digests = {}
    for name, make in makers.items():
        d = tmp_path / name
        _spec(d)
        make(d / "rootfs.tar")
        run = vinci("build", d, "-o", f"oci:{d}/out.oci", env=_env(tmp_path))
        digests[name] = run.digest
    assert len(set(digests.values())) == 1, digests

    layout = tmp_path / "gnu-reversed-xz/out.oci"
    if privileged:
        # As root umoci makes the device and sets the capability; --rootless would skip both.
        require_tool("umoci")
        bundle = tmp_path / "bundle"
        subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", bundle], check=True)
        rootfs = bundle / "rootfs"
        assert os.stat(rootfs / "dev/null").st_rdev == os.makedev(1, 3)
        assert os.getxattr(rootfs / "bin/busybox", "security.capability") == CAPABILITY
    else:
        rootfs = umoci_unpack(layout, "latest", tmp_path / "bundle")
    busybox, hard = os.stat(rootfs / "bin/busybox"), os.stat(rootfs / "usr/bin/hard")
    assert busybox.st_ino == hard.st_ino  # one file, two names
    assert busybox.st_mode & 0o7777 == 0o4755
    assert os.readlink(rootfs / "bin/sh") == "busybox"
    assert (rootfs / "etc/motd").read_text() == "hello\n"


def test_cached_until_the_tarball_changes(
    vinci: VinciRunner, tmp_path: Path, busybox_path: Path
) -> None:
    root, _ = _rootfs(tmp_path, busybox_path)
    d = tmp_path / "spec"
    _spec(d)
    _gnu(root, d / "rootfs.tar")
    first = json.loads(vinci("build", d, "--json", env=_env(tmp_path)).stdout)
    again = json.loads(vinci("build", d, "--json", env=_env(tmp_path)).stdout)
    assert again["manifest_digest"] == first["manifest_digest"]
    assert again["layers"][0]["cache_hit"] is True
    (root / "etc/motd").write_text("changed\n")
    _gnu(root, d / "rootfs.tar")
    changed = json.loads(vinci("build", d, "--json", env=_env(tmp_path)).stdout)
    assert changed["layers"][0]["cache_hit"] is False
    assert changed["manifest_digest"] != first["manifest_digest"]
    # busybox's members were copied from the last build's layer, not compressed again, and
    # the image is the one an empty cache gives.
    assert changed["layers"][0]["reused_bytes"] > 1 << 20
    fresh = vinci("build", d, "--json", env=_env(tmp_path / "empty")).stdout
    assert json.loads(fresh)["manifest_digest"] == changed["manifest_digest"]


def test_path_include_and_exclude(vinci: VinciRunner, tmp_path: Path, busybox_path: Path) -> None:
    root, _ = _rootfs(tmp_path, busybox_path)
    d = tmp_path / "spec"
    _spec(
        d, "{source: ./rootfs.tar, path: /opt/root, include: ['bin/**', 'etc/**'], exclude: [motd]}"
    )
    _gnu(root, d / "rootfs.tar")
    vinci("build", d, "-o", f"oci:{d}/out.oci", env=_env(tmp_path))
    blob = d / "out.oci/blobs/sha256" / _manifest_layer(d / "out.oci").removeprefix("sha256:")
    with tarfile.open(blob) as tar:
        names = tar.getnames()
    assert names == [
        "opt/root",
        "opt/root/bin",
        "opt/root/bin/busybox",
        "opt/root/bin/sh",
    ]  # etc is left out: nothing below it is kept


def test_whiteouts_refused_unless_asked(vinci: VinciRunner, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/.wh.motd").write_text("")
    d = tmp_path / "spec"
    _spec(d)
    _gnu(root, d / "rootfs.tar")
    run = vinci("build", d, env=_env(tmp_path), check=False)
    assert run.returncode == 1
    assert "vinci.yaml:5:5: layers[0].tar" in run.stderr
    assert "/etc/.wh.motd is a whiteout, which deletes /etc/motd" in run.stderr
    assert "whiteouts: true" in run.stderr
    _spec(d, "{source: ./rootfs.tar, whiteouts: true}")
    vinci("build", d, env=_env(tmp_path))
    # A whiteout the layer leaves out is no concern.
    _spec(d, "{source: ./rootfs.tar, exclude: ['.wh.*']}")
    vinci("build", d, env=_env(tmp_path))


def test_validate_says_when_the_source_is_not_a_tar(vinci: VinciRunner, tmp_path: Path) -> None:
    d = tmp_path / "spec"
    _spec(d)
    (d / "rootfs.tar").write_bytes(b"hello, this is not an archive\n" * 40)
    run = vinci("validate", d, check=False)
    assert run.returncode == 2
    assert "vinci.yaml:5:10: layers[0].tar: './rootfs.tar' is not a tar archive" in run.stderr
    (d / "rootfs.tar").write_bytes(b"\xfd7zXZ\x00broken")
    run = vinci("validate", d, check=False)
    assert run.returncode == 2
    assert "cannot be decompressed" in run.stderr


@pytest.mark.slow
def test_verify_passes(vinci: VinciRunner, tmp_path: Path, busybox_path: Path) -> None:
    root, _ = _rootfs(tmp_path, busybox_path)
    d = tmp_path / "spec"
    spec = _spec(d, "./rootfs.tar.gz")
    # The accounts layer, which reads the tar layer's /etc/passwd, is held to the same test.
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    spec.write_text(
        spec.read_text() + "accounts:\n  users: [{username: app, uid: 1000}]\n  run-as: app\n"
    )
    _gnu(root, d / "rootfs.tar.gz", "--gzip")
    run = vinci("verify", d, env=_env(tmp_path))
    assert "reproducible" in run.stdout + run.stderr
