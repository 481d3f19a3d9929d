"""One spec, one digest on every machine class this host can emulate.

The same `vinci build` runs natively, under user-mode qemu as three older x86-64 CPUs (no
SSE4.2; SSE4.2 without AVX; AVX2), and as arm64 with a Debian arm64 userland and the
project's compiled dependencies as their aarch64 wheels from PyPI. The default codec and
zstd must give one image digest everywhere. A control shows that the emulation is real:
gzip-isal, whose bytes follow the instruction set, gives another digest without SSE4.2.

Needs qemu-user and mmdebstrap (.ci/setup), and Debian's and PyPI's servers for the arm64
userland and wheels (about 5 s; the whole test takes about 30 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from conftest import REPO
from support.verify import require_tool

pytestmark = pytest.mark.slow

X86_CPUS = ("qemu64", "Nehalem", "Haswell")  # baseline, SSE4.2 without AVX, AVX2
# The distributions a build imports whose wheels hold compiled code or pin the bytes.
ARM_WHEELS = ("pyyaml", "isal", "zstandard", "deflate")


def _spec(root: Path) -> Path:
    """6 MiB of mixed random and text content (several gzip members) and a 6-byte file."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from workloads import MixedStream
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    root.mkdir()
    (root / "mixed.bin").write_bytes(MixedStream(17).read(6 << 20))
    (root / "small").write_bytes(b"hello\n")
    (root / "vinci.yaml").write_text(
        "spec-version: v1\n"
        "layers:\n"
        "  - file: {path: /mixed.bin, source: ./mixed.bin}\n"
        "  - file: {path: /small, source: ./small}\n"
    )
    return root


def _arm64(work: Path) -> tuple[Path, Path]:
    """A Debian 12 arm64 userland unpacked without running any of its scripts, and a
    directory holding the aarch64 wheels of the versions installed here."""
    root, wheels, site = work / "root", work / "wheels", work / "site"
    work.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=extract",
            "--architectures=arm64",
            "--include=python3,libpython3.11-stdlib",
            "bookworm",
            str(root),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    pins = [f"{name}=={version(name)}" for name in ARM_WHEELS]
    platforms = ["manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64"]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
        + ["--only-binary=:all:", "--no-deps", "--python-version", "3.11"]
        + ["--implementation", "cp", "-d", str(wheels)]
        + [arg for p in platforms for arg in ("--platform", p)]
        + pins,
        check=True,
        capture_output=True,
        timeout=300,
    )
    for wheel in sorted(wheels.glob("*.whl")):
        subprocess.run([sys.executable, "-m", "zipfile", "-e", str(wheel), str(site)], check=True)
    return root, site


def _build(
    prefix: list[str], python: str, spec: Path, out: Path, env: dict[str, str], *options: str
) -> str:
    where = ["--cache-dir", str(out / "cache"), "-o", f"oci:{out / 'image'}"]
    proc = subprocess.run(
        [*prefix, python, "-m", "engine.cli", "build", str(spec), "-q", *where, *options],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def arm64(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    require_tool("qemu-aarch64", "mmdebstrap")
    return _arm64(tmp_path_factory.mktemp("arm64"))


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_one_digest_on_every_machine_class(
    codec: str, arm64: tuple[Path, Path], tmp_path: Path
) -> None:
    require_tool("qemu-x86_64")
    spec = _spec(tmp_path / "spec")
    env = {"PYTHONPATH": str(REPO)}
    options = ("--compression", codec)
    digests = {"native": _build([], sys.executable, spec, tmp_path / "native", env, *options)}
    for cpu in X86_CPUS:
        digests[cpu] = _build(
            ["qemu-x86_64", "-cpu", cpu], sys.executable, spec, tmp_path / cpu, env, *options
        )
    root, site = arm64
    digests["arm64"] = _build(
        ["qemu-aarch64"],
        str(root / "usr/bin/python3.11"),
        spec,
        tmp_path / "arm",
        {"QEMU_LD_PREFIX": str(root), "PYTHONPATH": f"{site}:{REPO}"},
        *options,
    )
    assert len(set(digests.values())) == 1, digests


def test_the_emulated_cpu_is_really_another(tmp_path: Path) -> None:
    """The control: isal's parse follows the instruction set, so gzip-isal gives another
    image without SSE4.2. Were qemu running the host's CPU, the test above would prove
    nothing."""
    require_tool("qemu-x86_64")
    spec = _spec(tmp_path / "spec")
    env = {"PYTHONPATH": str(REPO)}
    native = _build([], sys.executable, spec, tmp_path / "n", env, "--compression", "gzip-isal")
    old = _build(
        ["qemu-x86_64", "-cpu", "qemu64"],
        sys.executable,
        spec,
        tmp_path / "q",
        env,
        "--compression",
        "gzip-isal",
    )
    assert native != old
