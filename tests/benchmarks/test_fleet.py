"""The fleet cache benchmark runs end to end at --quick sizes: a smoke test, not a measurement
(`python -m benchmarks.fleet` is run on demand)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.verify import require_tool

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.registry
def test_fleet_quick_completes(tmp_path: Path) -> None:
    require_tool("docker-registry")
    figures = tmp_path / "fleet.json"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.fleet", "--quick"),
            *("--work", str(tmp_path / "w"), "--json", str(figures)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(figures.read_text())
    # What holds at any size: B sends nothing up, one digest, and eight racing runners all
    # succeed and leave one entry per layer.
    (two,) = data["two_runners"]
    assert two["uploads_by_b"] == 0 and two["one_digest"]
    assert data["eight_runners"]["target_met"]
