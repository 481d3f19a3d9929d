"""What the CLI prints: live progress on a terminal, silence off one, the digest last."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from conftest import REPO, VinciRunner
from trees import make_tree


def test_quiet_off_a_tty_with_the_digest_last(tmp_path: Path, vinci: VinciRunner) -> None:
    spec = make_tree(tmp_path / "src")
    run = vinci(
        "build", spec, "-o", f"oci:{tmp_path}/o", env={"VINCI_CACHE_DIR": str(tmp_path / "c")}
    )
    assert run.stderr == ""
    assert run.stdout.splitlines() == [run.digest]


def test_live_progress_on_a_tty(tmp_path: Path) -> None:
    spec = make_tree(tmp_path / "src")
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "build", str(spec), "-o", f"oci:{tmp_path}/o"],
        cwd=REPO,
        env={**os.environ, "VINCI_CACHE_DIR": str(tmp_path / "c")},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    screen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    out, _ = proc.communicate(timeout=60)
    os.close(leader)
    text = screen.decode()
    assert proc.returncode == 0
    for i, kind in enumerate(["directory", "combined", "file"]):
        assert f"layers[{i}].{kind}" in text
    assert "done" in text and "\x1b[" in text  # redrawn in place
    assert "built " in text and "0/3 layers cached" in text
    assert out.decode().strip().startswith("sha256:")
