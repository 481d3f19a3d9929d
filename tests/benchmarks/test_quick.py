"""The benchmark entry point runs end to end at --quick sizes: a smoke test, not a measurement
(the figures of a loaded CI machine mean nothing; `python -m benchmarks.run` is run on demand)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_mode_completes_and_prints_a_table(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--work",
            str(tmp_path / "w"),
            "--json",
            str(tmp_path / "figures.json"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("| benchmark | vinci | baseline (same run) | ratio | target |")
    rows = [line for line in lines if line.startswith("| ")]
    # Every benchmark contributed its rows, none of them failed to measure.
    for name in (
        "one 24 MiB file layer",
        "--jobs 2",
        "no-op rebuild",
        "changed file",
        "20-layer spec",
        "push",
        "pull",
        "hello example, warm",
        "hello example, cold",
    ):
        assert any(name in row for row in rows), (name, proc.stdout)
    assert "not measurable" not in proc.stdout
    assert (tmp_path / "figures.json").stat().st_size > 0
