"""Where a built image goes: `oci:DIR` (default), `oci-archive:FILE`, `docker-archive:FILE`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import UsageError
from engine.spec.locate import beside_spec

OUTPUT_KINDS = ("oci", "oci-archive", "docker-archive")


@dataclass(frozen=True)
class OutputTarget:
    kind: str
    path: Path

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}"


def split_output(text: str) -> tuple[str, str] | None:
    """`KIND:PATH` as (kind, path); None unless KIND is a known output and PATH is given."""
    kind, sep, path = text.partition(":")
    if not sep or kind not in OUTPUT_KINDS or not path:
        return None
    return kind, path


def parse_output(text: str) -> OutputTarget:
    parsed = split_output(text)
    if parsed is None:
        raise UsageError(
            f"--output {text!r}: expected oci:DIR, oci-archive:FILE or docker-archive:FILE"
        )
    return OutputTarget(parsed[0], Path(parsed[1]))


def default_output(spec_path: Path) -> OutputTarget:
    """Next to the spec: examples/hello/vinci.yaml -> examples/hello/vinci.oci"""
    return OutputTarget("oci", Path(beside_spec(spec_path, ".oci")))
