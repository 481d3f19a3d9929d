"""OCI content descriptors and platforms as immutable values, with their canonical JSON form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import InvalidValue
from engine.oci.digest import Digest


@dataclass(frozen=True)
class Platform:
    """An OS/architecture pair, optionally with a variant (linux/arm64/v8)."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidValue(f"not a platform: {text!r} (expected os/arch or os/arch/variant)")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Platform:
        return cls(
            str(data.get("os", "")),
            str(data.get("architecture", "")),
            str(data.get("variant", "")),
        )

    def to_json(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    def matches(self, other: Platform) -> bool:
        """True if an image for `other` can serve a request for `self`.

        An empty variant on either side matches any variant (arm64 images often omit v8).
        """
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        return not self.variant or not other.variant or self.variant == other.variant

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    """A pointer to a blob: media type, digest and size (plus optional annotations/platform)."""

    media_type: str
    digest: Digest
    size: int
    annotations: tuple[tuple[str, str], ...] = field(default=())
    platform: Platform | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Descriptor:
        platform = data.get("platform")
        return cls(
            media_type=str(data["mediaType"]),
            digest=Digest.parse(str(data["digest"])),
            size=int(data["size"]),
            annotations=tuple(sorted((data.get("annotations") or {}).items())),
            platform=Platform.from_json(platform) if isinstance(platform, Mapping) else None,
        )
