"""Fixtures for engine tests: the real `vinci` CLI in a subprocess, and example copies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def digest(self) -> str:
        """The manifest digest: `vinci build` prints it as its last line."""
        return self.stdout.strip().splitlines()[-1]


VinciRunner = Callable[..., Run]


def run_vinci(
    *args: str | os.PathLike[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    user: int | None = None,
    umask: int | None = None,
    timeout: float = 300,
) -> Run:
    """Run `python -m engine.cli ARGS` with a clean, explicit environment."""
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        # No settings file of the machine's user (engine/config.py); a test passes its own.
        "VINCI_CONFIG": os.devnull,
    }
    base.update(env or {})
    cmd = [sys.executable, "-m", "engine.cli", *map(str, args)]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
        base["HOME"] = "/nonexistent"

    def pre() -> None:
        if umask is not None:
            os.umask(umask)

    proc = subprocess.run(
        cmd,
        cwd=cwd or REPO,
        env=base,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=pre if umask is not None else None,
    )
    result = Run(proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"vinci {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}"
        )
    return result


@pytest.fixture
def vinci() -> VinciRunner:
    return run_vinci


@pytest.fixture
def hello(tmp_path: Path, busybox_path: Path) -> Path:
    """A private copy of examples/hello with its busybox in place; returns the spec path."""
    d = tmp_path / "hello"
    d.mkdir()
    shutil.copyfile(EXAMPLES / "hello" / "vinci.yaml", d / "vinci.yaml")
    shutil.copyfile(busybox_path, d / "busybox")
    os.chmod(d / "busybox", 0o755)
    return d / "vinci.yaml"


def copy_example(name: str, dest: Path, busybox: Path | None = None) -> Path:
    """Copy examples/NAME to dest (busybox put in place if the example wants one)."""
    shutil.copytree(EXAMPLES / name, dest, symlinks=True, ignore=shutil.ignore_patterns("*.oci"))
    maker = dest / "make-rootfs.sh"
    if maker.exists() and not (dest / "rootfs.tar.xz").exists():
        # examples/app's base, which .ci/setup makes in the checkout: made here if it did not.
        subprocess.run([maker, busybox or "/bin/busybox"], check=True, capture_output=True)
    if busybox is not None and not (dest / "busybox").exists():
        shutil.copyfile(busybox, dest / "busybox")
        os.chmod(dest / "busybox", 0o755)
    return dest / "vinci.yaml"
