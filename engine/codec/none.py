"""`none`: the layer is the tar itself (portable, trivially)."""

from __future__ import annotations

from typing import BinaryIO

from engine.codec import Members, Reusable
from engine.oci import mediatypes

NAME = "none"
MEDIA_TYPE = mediatypes.OCI_LAYER
PORTABLE = True
LEVELS: range | None = None  # nothing to choose
DEFAULT_LEVEL = 0


def identity(level: int) -> str:
    return "none"


def summary(level: int) -> str:
    return "uncompressed tar"


class _Passthrough:
    members: Members | None = None
    reused = 0

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink

    def write(self, piece: bytes) -> int:
        return self._sink.write(piece)

    def close(self) -> None:
        pass


def open(sink: BinaryIO, level: int, threads: int, reuse: Reusable | None) -> _Passthrough:
    return _Passthrough(sink)
