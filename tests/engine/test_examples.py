"""Every example under examples/ has a pinned golden digest, builds to it from a copy in
another directory, and passes umoci (diff_ids, contents) and oci-image-tool (schema)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from conftest import EXAMPLES, VinciRunner, copy_example
from support.verify import oci_image_tool_validate, require_tool, umoci_unpack
from test_build import BUSYBOX_SHA256

# An example whose inputs include Debian's busybox is pinned for BUSYBOX_SHA256.
GOLDEN = {
    "hello": "sha256:da95264a8c3f105482d83dd1abb787db08acbc2b5a3e3db895bc72d07fa0c641",
    "webapp": "sha256:9eecd31be282c9c847c04b7c5805d74cac9185af761ad21bb50e2c1732616ad9",
    "app": "sha256:1fbf6a5fa2b95fdb9413095e7954d1a0892cdbaaa6454fa6e13a001b77ede6a4",
    # An index; tests/engine/test_multiplatform.py checks each of its images.
    "multiarch": "sha256:eb2da04ee5029b0db644d0c22b6eeb3c1001b21c5ba4e5666682e1ceaae9decd",
}
# Debian 12's busybox-static for each architecture, as .ci/setup fetches it.
MULTIARCH_BUSYBOX = {
    "busybox-amd64": "3d9f2889d6782537624a4e1a10e68a2ddd53e0ee8bac02676f27308f42ec6bf6",
    "busybox-arm64": "61781806ad3650b0b9d2b3fc6971e2bffdca967af1a95375abd0578bafff14fb",
}
NEEDS_BUSYBOX = {"hello", "webapp", "app"}
ALL = sorted(p.parent.name for p in EXAMPLES.glob("*/vinci.yaml"))


def test_every_example_is_pinned() -> None:
    assert sorted(GOLDEN) == ALL, "pin the digest of every example in GOLDEN"


@pytest.mark.parametrize("name", ALL)
def test_example_golden_digest(
    name: str, tmp_path: Path, vinci: VinciRunner, busybox_path: Path
) -> None:
    require_tool("umoci", "oci-image-tool")
    spec = copy_example(name, tmp_path / "elsewhere" / name, busybox_path)
    maker = spec.parent / "make-rootfs.sh"
    if maker.exists():  # the example's base is a rootfs tarball made from busybox
        subprocess.run([maker, busybox_path], check=True, capture_output=True)
    out = tmp_path / "out.oci"
    run = vinci("build", spec, "-o", f"oci:{out}", env={"VINCI_CACHE_DIR": str(tmp_path / "c")})
    tag = json.loads((out / "index.json").read_bytes())["manifests"][0]["annotations"][
        "org.opencontainers.image.ref.name"
    ]
    oci_image_tool_validate(out, tag)
    if name == "multiarch":
        # umoci unpacks an image, not an index: test_multiplatform unpacks each platform's.
        if any(
            hashlib.sha256((spec.parent / f).read_bytes()).hexdigest() != sha
            for f, sha in MULTIARCH_BUSYBOX.items()
        ):
            pytest.skip("busybox-static for amd64/arm64 is not the pinned build")
        assert run.digest == GOLDEN[name]
        return
    umoci_unpack(out, tag, tmp_path / "bundle")
    pinned = hashlib.sha256(busybox_path.read_bytes()).hexdigest() == BUSYBOX_SHA256
    if name in NEEDS_BUSYBOX and not pinned:
        pytest.skip(f"busybox-static is not the pinned build ({BUSYBOX_SHA256[:12]}…)")
    assert run.digest == GOLDEN[name]
