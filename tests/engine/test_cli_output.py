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
        [sys.executable, "-m", "engine.cli", "build", str(spec), "-o", f"oci:{tmp_path}/o"],
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


def test_exit_codes_are_the_readmes(tmp_path: Path, vinci: VinciRunner, hello: Path) -> None:
    """2 for every usage or spec error, 1 for a failed build; one line, never a traceback."""
    env = {"VINCI_CACHE_DIR": str(tmp_path / "c")}
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec-version: v1\nlayers:\n  - file: {path: /x, source: ./missing}\n")
    failing = tmp_path / "failing"
    failing.mkdir()
    (failing / "vinci.yaml").write_text(
        "spec-version: v1\nlayers:\n  - import: ./not-an-image.tar\n"
    )
    (failing / "not-an-image.tar").write_bytes(b"\0" * 1024)
    usage = {
        "a missing spec": ("build", tmp_path / "nowhere.yaml"),
        "a directory without a spec": ("build", empty),
        "no spec here": ("validate",),
        "an invalid spec": ("validate", broken),
        "an unknown output kind": ("build", hello, "-o", f"zip:{tmp_path}/x"),
        "an unknown codec": ("build", hello, "--compression", "lzma"),
        "a bad SOURCE_DATE_EPOCH flag": ("build", hello, "--source-date-epoch", "-5"),
        "a bad reference": ("resolve", "Not A Reference"),
        "a digest as a push target": ("push", hello, "--image", f"127.0.0.1:9/r@sha256:{'0' * 64}"),
        "an unknown command option": ("build", hello, "--no-such-flag"),
    }
    for what, args in usage.items():
        run = vinci(*args, cwd=tmp_path, env=env, check=False)
        assert run.returncode == 2, (what, run.stderr)
        assert "Traceback" not in run.stderr and run.stderr.strip(), what
    run = vinci("build", failing, env=env, check=False)
    assert run.returncode == 1, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "internal error" not in run.stderr
