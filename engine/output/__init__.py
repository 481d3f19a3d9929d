"""Where a built image goes: `oci:DIR` (default), `oci-archive:FILE`, `docker-archive:FILE`."""

from __future__ import annotations

from pathlib import Path

from engine.buildopts import default_output_path, split_output
from engine.errors import OutputError
from engine.values import dataclass


@dataclass(frozen=True)
class OutputTarget:
    kind: str
    path: Path

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}"


def parse_output(text: str) -> OutputTarget:
    parsed = split_output(text)
    if parsed is None:
        raise OutputError(
            f"--output {text!r}: expected oci:DIR, oci-archive:FILE or docker-archive:FILE"
        )
    return OutputTarget(parsed[0], Path(parsed[1]))


def default_output(spec_path: Path) -> OutputTarget:
    """Next to the spec: examples/hello/vinci.yaml -> examples/hello/vinci.oci"""
    return OutputTarget("oci", Path(default_output_path(str(spec_path))))
