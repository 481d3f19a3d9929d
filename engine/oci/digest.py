"""Content digests ("sha256:<hex>") as values, and streaming helpers that compute them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import BinaryIO

from engine.errors import InvalidValue

_HEX = re.compile(r"^[a-f0-9]{64}$")
CHUNK = 1 << 20


@dataclass(frozen=True, order=True)
class Digest:
    """A sha256 content digest. Other algorithms are refused: OCI images here use sha256."""

    hex: str

    def __post_init__(self) -> None:
        if not _HEX.match(self.hex):
            raise InvalidValue(f"not a sha256 hex digest: {self.hex!r}")

    @property
    def algorithm(self) -> str:
        return "sha256"

    @classmethod
    def parse(cls, text: str) -> Digest:
        algo, sep, hexpart = text.partition(":")
        if not sep or algo != "sha256":
            raise InvalidValue(f"not a sha256 digest: {text!r} (expected sha256:<64 hex digits>)")
        return cls(hexpart)

    @classmethod
    def of_bytes(cls, data: bytes) -> Digest:
        return cls(hashlib.sha256(data).hexdigest())

    @classmethod
    def of_stream(cls, stream: BinaryIO) -> tuple[Digest, int]:
        """Digest and size of everything left in `stream`, read in bounded chunks."""
        h = hashlib.sha256()
        size = 0
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while n := stream.readinto(view):  # type: ignore[attr-defined]
            h.update(view[:n])
            size += n
        return cls(h.hexdigest()), size

    @property
    def short(self) -> str:
        return self.hex[:12]

    def __str__(self) -> str:
        return f"sha256:{self.hex}"


def is_digest(text: str) -> bool:
    algo, sep, hexpart = text.partition(":")
    return bool(sep) and algo == "sha256" and bool(_HEX.match(hexpart))
