"""What every image is to the library, wherever it lives: a layout, an archive, a registry,
the cache after a build. Small read-only protocols, after go-containerregistry's v1.Image and
v1.Layer: sources return them (engine.sources.image), sinks (write, push), the comparison and
the inspector take them.

The manifest and config are kept as their raw bytes (their digests are digests of exactly
these bytes) and parsed; a layer's blob is streamed on demand, never held."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from engine.oci.descriptor import Descriptor
from engine.oci.digest import Digest


@dataclass(frozen=True)
class ImageRef:
    """Which image this is, as a person named it, and what pins it."""

    where: str  # as the user named it
    kind: str  # spec | oci | oci-archive | docker-archive | registry
    manifest: str  # manifest digest, "" when there is none (a docker-archive has none)
    config: str

    def to_json(self) -> dict[str, str | None]:
        return {
            "where": self.where,
            "kind": self.kind,
            "manifest": self.manifest or None,
            "config": self.config,
        }


class Layer(Protocol):
    """One layer of an image: its blob as the manifest describes it, its diff_id, and the
    history line that made it."""

    @property
    def position(self) -> int: ...

    @property
    def descriptor(self) -> Descriptor: ...

    @property
    def diff_id(self) -> Digest: ...

    @property
    def created_by(self) -> str: ...

    @property
    def codec(self) -> str:
        """The identity of the codec that compressed it when vinci knows it, else ""."""
        ...


class Image(Protocol):
    """An image: its manifest (None for a docker-archive, which has none) and config, raw and
    parsed, its layers in order, and a stream of each layer's blob. `close` releases what
    opening it held (an archive's file, a registry connection)."""

    @property
    def ref(self) -> ImageRef: ...

    @property
    def raw_manifest(self) -> bytes | None: ...

    @property
    def raw_config(self) -> bytes: ...

    @property
    def manifest(self) -> dict[str, Any] | None: ...

    @property
    def config(self) -> dict[str, Any]: ...

    @property
    def layers(self) -> Sequence[Layer]: ...

    def open_layer(self, layer: Layer) -> BinaryIO: ...

    def close(self) -> None: ...
