"""Import layers: the layers of an existing image, entering ours byte for byte.

    import:     ./base.oci | base.tar (OCI archive or docker-archive)   -> sources.local
    import-oci: registry/repo@sha256:…                                 -> registry.pull

Either way the image is resolved to one manifest for the spec's platform, its layers are
brought into the cache with their digests and diff_ids verified (a mismatch is a
CorruptImportedImage naming the blob), and a LayerRecord remembers the result under a key
derived from what pins the image's content (its manifest digest, or for a docker-archive its
config digest and layer files) and the platform: an unchanged import is a cache hit that reads
nothing but the small JSON that identifies it (and, for import-oci, nothing at all).

The record's extra['config'] names the imported config blob, from which `inherit-config`
takes the base of our config. Registry code (and httpx) is imported only for import-oci.
"""

from __future__ import annotations

from engine.cache.imported import (
    MEDIA_TYPE_FOR,
    cached_import,
    import_key,
    known_layer,
    make_record,
)
from engine.cache.ingest import ingest_stream
from engine.cache.provenance import set_diff_id
from engine.cache.records import LayerRecord, RecordIndex
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.errors import CorruptImportedImage, ImageImportError, RegistryError
from engine.events import EventSink
from engine.oci.descriptor import Descriptor, Platform
from engine.oci.digest import Digest
from engine.sources.local import open_local_image
from engine.spec.model import ImportOCISpec, ImportSpec, layer_summary


def import_layers(
    node: ImportSpec | ImportOCISpec,
    store: BlobStore,
    platform: Platform,
    index: int,
    sink: EventSink,
    cancel: CancelToken | None,
) -> tuple[LayerRecord, bool]:
    """Bring the imported image's layers into the cache. Returns the record (its
    extra['config'] names the imported config blob) and whether it was already cached."""
    try:
        if isinstance(node, ImportOCISpec):
            from engine.registry.pull import import_remote

            return import_remote(node, store, platform, index, sink, cancel)
        return _import_local(node, store, platform, index, sink, cancel)
    except (ImageImportError, RegistryError) as e:
        # One line that says where in the spec: "vinci.yaml:7:5: layers[0].import: …".
        raise type(e)(f"{node.pos}: {node.label}: {e}") from None


def _import_local(
    node: ImportSpec,
    store: BlobStore,
    platform: Platform,
    index: int,
    sink: EventSink,
    cancel: CancelToken | None,
) -> tuple[LayerRecord, bool]:
    from engine.events import ProgressThrottle

    where = node.written
    image = open_local_image(node.path, where, node.tag, platform)
    try:
        key = import_key(image.identity, platform)
        cached = cached_import(store, key, index, sink)
        if cached is not None:
            return cached, True
        todo = [
            layer
            for layer in image.layers
            if known_layer(store, layer.digest, layer.size, layer.diff_id) is None
        ]
        progress = ProgressThrottle(sink, index, "fetching", sum(x.size for x in todo))
        layers: list[tuple[Descriptor, Digest, int]] = []
        for layer in image.layers:
            usize = known_layer(store, layer.digest, layer.size, layer.diff_id)
            if usize is not None and layer.digest is not None and layer.media_type is not None:
                layers.append(
                    (Descriptor(layer.media_type, layer.digest, layer.size), layer.diff_id, usize)
                )
                continue
            what = where if image.kind == "oci" else f"{where} ({layer.member})"
            if not image.files.exists(layer.member):
                raise CorruptImportedImage(
                    f"corrupt imported image {what}: layer {layer.digest or layer.member} is "
                    "missing"
                )
            with image.files.open(layer.member) as stream:
                got = ingest_stream(
                    store,
                    stream,
                    what,
                    digest=layer.digest,
                    size=layer.size,
                    compression=layer.compression,
                    diff_id=layer.diff_id,
                    progress=progress.advance,
                    cancel=cancel,
                )
            assert got.diff_id is not None
            set_diff_id(store, got.digest, got.diff_id, got.uncompressed_size)
            media_type = layer.media_type or MEDIA_TYPE_FOR[got.compression]
            layers.append(
                (Descriptor(media_type, got.digest, got.size), got.diff_id, got.uncompressed_size)
            )
        config = store.put_bytes(image.config.data)
        manifest = image.manifest.digest if image.manifest is not None else None
        record = make_record(key, layer_summary(node), layers, config, manifest)
        RecordIndex(store).put(record)
        return record, False
    finally:
        image.close()
