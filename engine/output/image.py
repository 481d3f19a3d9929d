"""Writes an image whose blobs are in the cache to an output target: an OCI layout directory
or one tarball that is both an OCI archive and a docker-archive."""

from __future__ import annotations

from engine.cache.image import StoredImage
from engine.cache.store import BlobStore
from engine.errors import OutputError
from engine.oci.descriptor import Platform
from engine.oci.reference import ImageReference
from engine.output import OutputTarget
from engine.output.archive import write_archive
from engine.output.layout import write_layout


def write_image(
    target: OutputTarget,
    image: StoredImage,
    store: BlobStore,
    *,
    tag: str,
    platform: Platform,
    reference: ImageReference | None = None,
) -> None:
    """Write `image` (its blobs in `store`) to `target`, named by `tag` (the layout's
    org.opencontainers.image.ref.name; with `reference`, the archive's repository tag)."""
    if target.kind == "oci":
        write_layout(target.path, store, image.manifest, image.config, image.layers, tag, platform)
    elif target.kind in ("oci-archive", "docker-archive"):
        # One tarball serves both: an OCI archive that also carries docker's manifest.json.
        write_archive(
            target.path,
            store,
            image.manifest,
            image.config,
            list(image.layers),
            tag,
            platform,
            reference,
        )
    else:
        raise OutputError(f"{target.kind} output is not available")
