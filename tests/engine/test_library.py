"""The library is what docs/library.md says it is: its script runs as written against a real
registry, and the image it writes passes umoci and runs under podman. The library's door
(`engine.__all__`) is exactly the documented names."""

from __future__ import annotations

import hashlib
import importlib
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO
from support.registry import RegistryServer
from support.verify import podman_run, require_tool, skopeo_inspect_raw, umoci_unpack

import engine

DOC = REPO / "docs" / "library.md"


def _script() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "docs/library.md has no python block"
    return blocks[0]


def test_the_documented_script_builds_writes_pushes_and_reads_back(
    registry: RegistryServer, busybox_path: Path, tmp_path: Path
) -> None:
    require_tool("umoci", "podman", "skopeo")
    spec_dir = tmp_path / "hello"
    spec_dir.mkdir()
    (spec_dir / "vinci.yaml").write_text((REPO / "examples/hello/vinci.yaml").read_text())
    (spec_dir / "busybox").write_bytes(busybox_path.read_bytes())
    (spec_dir / "busybox").chmod(0o755)
    script = tmp_path / "script.py"
    script.write_text(_script())
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, str(script), str(spec_dir), str(out), registry.host],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={
            "VINCI_CACHE_DIR": str(tmp_path / "cache"),
            "HOME": str(tmp_path),
            "PATH": "/usr/bin:/bin",
        },
    )
    assert proc.returncode == 0, proc.stderr
    digest = re.search(r"^built (sha256:[0-9a-f]{64})", proc.stdout, flags=re.M)
    assert digest is not None, proc.stdout
    assert f"pushed {digest.group(1)}" in proc.stdout
    assert "LayerDone" in proc.stdout and "BuildFinished" in proc.stdout
    # The layout the build wrote, the copy read back from the registry, and the registry
    # itself all hold the same manifest.
    for layout, tag in ((out / "hello.oci", "latest"), (out / "copy.oci", "v1")):
        rootfs = umoci_unpack(layout, tag, tmp_path / f"bundle-{layout.name}")
        assert (rootfs / "message").read_text() == "Hello, World!\n"
    raw = skopeo_inspect_raw(f"docker://{registry.host}/library/hello:v1", tls_verify=False)
    assert f"sha256:{hashlib.sha256(raw).hexdigest()}" == digest.group(1)
    run = podman_run(f"oci:{out / 'copy.oci'}:v1", workdir=tmp_path / "podman")
    assert run.stdout == "Hello, World!\n"


def test_the_door_is_exactly_the_documented_names() -> None:
    documented = set(re.findall(r"`([A-Za-z]\w*)[`(]", DOC.read_text()))
    assert set(engine.__all__) <= documented, set(engine.__all__) - documented
    assert sorted(engine.__all__) == sorted(n for n in dir(engine) if n in engine.__all__)
    # `engine.build` is the function, however the engine's packages were imported.
    importlib.import_module("engine.builder.run")
    importlib.import_module("engine.compare")
    assert callable(engine.build) and callable(engine.diff)
