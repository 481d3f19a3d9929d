"""Where a built image goes: `oci:DIR` (default), `oci-archive:FILE`, `docker-archive:FILE`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import OutputError

KINDS = ("oci", "oci-archive", "docker-archive")


@dataclass(frozen=True)
class OutputTarget:
    kind: str
    path: Path

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}"


def parse_output(text: str) -> OutputTarget:
    kind, sep, rest = text.partition(":")
    if not sep or kind not in KINDS or not rest:
        raise OutputError(
            f"--output {text!r}: expected oci:DIR, oci-archive:FILE or docker-archive:FILE"
        )
    return OutputTarget(kind, Path(rest))


def default_output(spec_path: Path) -> OutputTarget:
    """Next to the spec: examples/hello/vinci.yaml -> examples/hello/vinci.oci"""
    return OutputTarget("oci", spec_path.with_suffix(".oci"))
