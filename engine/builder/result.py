"""What a build made: per layer its cache record and whether it was a hit, and for the image
its manifest and config descriptors. Frozen values; `to_json` is what `vinci build --json`
prints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.builder.assemble import LayerPart
from engine.builder.plan import LayerPlan
from engine.cache.records import IMPORT_CODEC, LayerRecord
from engine.cache.store import BlobStore
from engine.codec import Codec
from engine.oci.descriptor import Descriptor
from engine.spec.model import Spec

if TYPE_CHECKING:
    from engine.sources.image import OpenedImage


@dataclass(frozen=True)
class LayerResult:
    index: int
    label: str
    summary: str
    record: LayerRecord
    cache_hit: bool
    seconds: float
    plan: LayerPlan | None = None  # None for import layers
    # Of a layer built (not a hit): uncompressed bytes whose compressed members were copied
    # from the layer's previous blob instead of compressed again (engine/codec/gzip.py).
    reused: int = 0

    @property
    def parts(self) -> list[LayerPart]:
        return [
            LayerPart(d, i)
            for d, i in zip(self.record.descriptors, self.record.diff_ids, strict=True)
        ]


@dataclass(frozen=True)
class BuildResult:
    spec: Spec
    manifest: Descriptor
    config: Descriptor
    layers: tuple[LayerResult, ...]
    codec: Codec
    seconds: float
    created: int
    cache_root: str = ""

    def store(self) -> BlobStore:
        """The cache the image was built into."""
        return BlobStore(Path(self.cache_root).parent)

    def image(self, store: BlobStore | None = None) -> OpenedImage:
        """The built image (engine.oci.image.Image), its blobs read from the cache it was
        built into."""
        # Imported here: the image readers (and zstandard) cost every build ~10 ms, and
        # only the callers that read the image back need them.
        from engine.sources.image import image_in_store

        store = store or self.store()
        layers = [
            (d, "" if r.record.codec == IMPORT_CODEC else r.record.codec)
            for r in self.layers
            for d in r.record.descriptors
        ]
        return image_in_store(store, self.manifest, self.config, layers, self.spec.display_path)

    @property
    def cached(self) -> int:
        return sum(1 for r in self.layers if r.cache_hit)

    def to_json(self) -> dict[str, Any]:
        layers = []
        for r in self.layers:
            for d, diff_id, usize in zip(
                r.record.descriptors, r.record.diff_ids, r.record.uncompressed_sizes, strict=True
            ):
                layers.append(
                    {
                        "index": r.index,
                        "label": r.label,
                        "summary": r.summary,
                        "digest": str(d.digest),
                        "diff_id": str(diff_id),
                        "size": d.size,
                        "uncompressed_size": usize,
                        "media_type": d.media_type,
                        "cache_hit": r.cache_hit,
                        "cache_key": r.record.key,
                        "reused_bytes": r.reused,
                        "seconds": round(r.seconds, 6),
                    }
                )
        return {
            "manifest_digest": str(self.manifest.digest),
            "manifest_size": self.manifest.size,
            "config_digest": str(self.config.digest),
            "media_type": self.manifest.media_type,
            "codec": {"name": self.codec.name, "identity": self.codec.identity},
            "platform": str(self.spec.platform),
            "created": self.created,
            "seconds": round(self.seconds, 6),
            "layers": layers,
        }


@dataclass(frozen=True)
class IndexResult:
    """What a multi-platform build made: one BuildResult per platform, in the spec's order,
    and the OCI image index that lists their manifests. `spec` is the multi-platform spec;
    each image's own `spec` is its platform's."""

    spec: Spec
    index: Descriptor
    images: tuple[BuildResult, ...]
    seconds: float
    created: int

    @property
    def manifest(self) -> Descriptor:
        """The index's descriptor: what a tag names, as a one-platform build's manifest."""
        return self.index

    @property
    def cached(self) -> int:
        return sum(r.cached for r in self.images)

    @property
    def layers(self) -> tuple[LayerResult, ...]:
        return tuple(layer for r in self.images for layer in r.layers)

    def store(self) -> BlobStore:
        return self.images[0].store()

    def to_json(self) -> dict[str, Any]:
        return {
            "index_digest": str(self.index.digest),
            "index_size": self.index.size,
            "manifest_digest": str(self.index.digest),
            "media_type": self.index.media_type,
            "created": self.created,
            "seconds": round(self.seconds, 6),
            "platforms": [r.to_json() for r in self.images],
        }


Built = BuildResult | IndexResult


def images_of(result: Built) -> tuple[BuildResult, ...]:
    """The one-platform results of a build: the image itself, or each of an index's."""
    return result.images if isinstance(result, IndexResult) else (result,)
