"""Run the `vinci` command as a child process the way a user does, and measure it: exit code,
stdout, stderr and the child's peak memory, with a hard time limit.

The peak is the child's own ru_maxrss: a small wrapper process runs vinci, waits for it and
reports `getrusage(RUSAGE_CHILDREN)`, which then holds vinci alone (the test process's
RUSAGE_CHILDREN would hold the largest of every child it ever ran). The time limit is a
timeout on the run: a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# argv: report-file, command...; runs the command, writes its peak RSS (KiB), exits with its
# exit code.
_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[2:]).returncode\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "open(sys.argv[1], 'w').write(str(peak))\n"
    "sys.exit(code)\n"
)


@dataclass(frozen=True)
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_mib: float

    def one_line_error(self) -> str:
        """The single line on stderr, after checking it is one line and not a crash."""
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got:\n{self.stderr}"
        line = lines[0]
        assert "internal error" not in line and "Traceback" not in line, line
        return line


def run_measured(
    *args: str | os.PathLike[str],
    cwd: Path,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> Measured:
    """`vinci ARGS` in `cwd`, with a clean environment, at most `timeout` seconds."""
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO),
    }
    base.update(env or {})
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "peak"
        cmd = [sys.executable, "-c", _WRAPPER, str(report), sys.executable, "-m", "engine.cli"]
        proc = subprocess.run(
            [*cmd, *map(str, args)],
            cwd=cwd,
            env=base,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        peak_kib = int(report.read_text())
    return Measured(proc.returncode, proc.stdout, proc.stderr, peak_kib / 1024)
