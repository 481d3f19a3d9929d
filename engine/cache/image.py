"""Brings every blob of an image (engine.oci.image.Image) into the cache, streamed and checked
against its digest, so that the cache's sinks (an OCI layout, an archive, a registry push) can
send any image, not only one vinci built. Blobs the cache holds already are not read."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from engine.cache.store import BlobStore
from engine.errors import CacheError, CorruptImportedImage, UsageError
from engine.oci import mediatypes
from engine.oci.descriptor import Descriptor
from engine.oci.image import Image


@dataclass(frozen=True)
class StoredImage:
    """An image whose blobs are all in one cache: what the sinks take."""

    manifest: Descriptor
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class StoredIndex:
    """An OCI image index whose manifests' blobs are all in one cache."""

    index: Descriptor
    images: tuple[StoredImage, ...]

    def blobs(self) -> list[Descriptor]:
        """Every blob the index reaches, each once: per image its config, layers, manifest."""
        out: dict[str, Descriptor] = {}
        for image in self.images:
            for d in (image.config, *image.layers, image.manifest):
                out.setdefault(str(d.digest), d)
        return list(out.values())


def store_image(image: Image, store: BlobStore) -> StoredImage:
    """Every blob of `image` into `store`: manifest and config as their exact bytes, each
    layer streamed from its source and committed only if its digest is the manifest's."""
    raw = image.raw_manifest
    if raw is None or image.manifest is None:
        raise UsageError(
            f"{image.ref.where} has no manifest (a docker-archive): import it in a spec "
            "(`- import: …`) to make an OCI image of it"
        )
    media_type = str(image.manifest.get("mediaType") or mediatypes.OCI_MANIFEST)
    manifest = Descriptor(media_type, store.put_bytes(raw), len(raw))
    config_digest = store.put_bytes(image.raw_config)
    if str(config_digest) != image.ref.config:
        raise CorruptImportedImage(f"{image.ref.where}: the config does not match its digest")
    config_media = str((image.manifest.get("config") or {}).get("mediaType") or "")
    config = Descriptor(config_media or mediatypes.OCI_CONFIG, config_digest, len(image.raw_config))
    for layer in image.layers:
        d = layer.descriptor
        if store.has_blob(d.digest, d.size):
            continue
        with image.open_layer(layer) as source, store.writer() as writer:
            shutil.copyfileobj(source, writer, 1 << 20)
            try:
                writer.commit(d.digest)
            except CacheError as e:
                raise CorruptImportedImage(f"{image.ref.where}: {e}") from None
    return StoredImage(manifest, config, tuple(layer.descriptor for layer in image.layers))
