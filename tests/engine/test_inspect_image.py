"""`vinci inspect` for people and `vinci export`: the runtime config and history (text and
--json) of a layout and of a registry reference; `--cat` reads the merged image (whiteouts
applied, symlinks inside the image followed) and writes bytes as they are off a terminal;
`--sort size` lists files flat, biggest first; `export` writes the merged filesystem."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import VinciRunner
from support.registry import RegistryServer

SPEC = """\
spec-version: v1
config:
  entrypoint: [/bin/busybox, cat]
  cmd: [/etc/os-release]
  env: {PATH: /bin, GREETING: hello}
  user: "1000:1000"
  exposed-ports: [8080]
layers:
  - combined:
      - directory: {path: /bin}
      - file: {path: /bin/busybox, source: ./busybox}
      - directory: {path: /usr/lib}
      - file: {path: /usr/lib/os-release, contents: "ID=vinci\\n"}
      - directory: {path: /etc}
      - symlink: {path: /etc/os-release, target: ../usr/lib/os-release}
      - file: {path: /etc/gone, contents: "old\\n"}
      - file: {path: /etc/big, contents: "0123456789012345678901234567890123456789\\n"}
  - tar: {source: ./top.tar, whiteouts: true}
"""


def _env(tmp_path: Path) -> dict[str, str]:
    return {"VINCI_CACHE_DIR": str(tmp_path / "cache")}


@pytest.fixture
def image(tmp_path: Path, busybox_path: Path, vinci: VinciRunner) -> Path:
    """A spec built into a layout; its second layer removes /etc/gone with a whiteout."""
    d = tmp_path / "spec"
    (d / "top/etc").mkdir(parents=True)
    (d / "top/etc/.wh.gone").write_text("")
    (d / "top/etc/new").write_text("new\n")
    subprocess.run(["tar", "-C", d / "top", "-cf", d / "top.tar", "etc"], check=True)
    (d / "busybox").write_bytes(busybox_path.read_bytes())
    os.chmod(d / "busybox", 0o755)
    (d / "vinci.yaml").write_text(SPEC)
    vinci("build", d, "-o", f"oci:{tmp_path}/image.oci", env=_env(tmp_path))
    return tmp_path / "image.oci"


def test_inspect_shows_the_runtime_config(image: Path, tmp_path: Path, vinci: VinciRunner) -> None:
    text = vinci("inspect", image, env=_env(tmp_path)).stdout
    assert 'entrypoint     ["/bin/busybox", "cat"]' in text
    assert 'cmd            ["/etc/os-release"]' in text
    assert "env            PATH=/bin\n               GREETING=hello\n" in text
    assert "user           1000:1000" in text
    assert "exposed-ports  8080/tcp" in text
    data = json.loads(vinci("inspect", image, "--json", env=_env(tmp_path)).stdout)
    assert data["runtime_config"]["Entrypoint"] == ["/bin/busybox", "cat"]
    assert data["runtime_config"]["Env"] == ["PATH=/bin", "GREETING=hello"]
    assert data["runtime_config"]["User"] == "1000:1000"
    assert [h["created_by"] for h in data["history"]] == [
        "vinci: combined (8 items)",
        "vinci: tar ./top.tar",
    ]


def test_inspect_a_registry_reference(
    image: Path, tmp_path: Path, vinci: VinciRunner, registry: RegistryServer
) -> None:
    vinci(
        "push", tmp_path / "spec", "--image", f"{registry.host}/people/app:v1", env=_env(tmp_path)
    )
    text = vinci("inspect", f"{registry.host}/people/app:v1", env=_env(tmp_path)).stdout
    assert 'entrypoint     ["/bin/busybox", "cat"]' in text
    assert "user           1000:1000" in text
    cat = vinci(
        "inspect", f"{registry.host}/people/app:v1", "--cat", "/etc/os-release", env=_env(tmp_path)
    )
    assert cat.stdout == "ID=vinci\n"


def test_cat_reads_the_merged_image(
    image: Path, tmp_path: Path, vinci: VinciRunner, busybox_path: Path
) -> None:
    # A symlink inside the image is followed, inside the image.
    run = vinci("inspect", image, "--cat", "/etc/os-release", env=_env(tmp_path))
    assert run.stdout == "ID=vinci\n"
    # The upper layer's file is found; the whiteout removed the lower one.
    assert vinci("inspect", image, "--cat", "/etc/new", env=_env(tmp_path)).stdout == "new\n"
    gone = vinci("inspect", image, "--cat", "/etc/gone", env=_env(tmp_path), check=False)
    assert gone.returncode == 1
    assert "/etc/gone is not in the image" in gone.stderr
    # Off a terminal, a binary file comes out byte for byte, all of it.
    out = tmp_path / "busybox.out"
    with open(out, "wb") as f:
        subprocess.run(
            [*_vinci(), "inspect", image, "--cat", "/bin/busybox"],
            stdout=f,
            check=True,
            env={**os.environ, **_env(tmp_path)},
        )
    assert out.read_bytes() == busybox_path.read_bytes()


def _vinci() -> list[str]:
    import sys

    return [sys.executable, "-m", "engine.cli"]


def test_sort_size_lists_files_biggest_first(
    image: Path, tmp_path: Path, vinci: VinciRunner
) -> None:
    data = json.loads(
        vinci(
            "inspect", image, "--layer", "0", "--sort", "size", "--json", env=_env(tmp_path)
        ).stdout
    )
    paths = [e["path"] for e in data["entries"]]
    assert paths[:3] == ["/bin/busybox", "/etc/big", "/usr/lib/os-release"]
    assert "/bin" not in paths  # files, not the tree's directories
    sizes = [e["size"] for e in data["entries"]]
    assert sizes == sorted(sizes, reverse=True)


def test_export_writes_the_merged_filesystem(
    image: Path, tmp_path: Path, vinci: VinciRunner, busybox_path: Path
) -> None:
    out = tmp_path / "rootfs.tar"
    vinci("export", image, "-o", out, env=_env(tmp_path))
    with tarfile.open(out) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == [
            "bin",
            "bin/busybox",
            "etc",
            "etc/big",
            "etc/new",
            "etc/os-release",
            "usr/lib",
            "usr/lib/os-release",
        ]
        assert members["etc/os-release"].linkname == "../usr/lib/os-release"
        busybox = tar.extractfile("bin/busybox")
        assert busybox is not None and busybox.read() == busybox_path.read_bytes()
    # Streamed to stdout, the same bytes.
    streamed = subprocess.run(
        [*_vinci(), "export", image, "-o", "-"],
        capture_output=True,
        check=True,
        env={**os.environ, **_env(tmp_path)},
    )
    assert streamed.stdout == out.read_bytes()
