"""How an imported layer is kept in the cache, for local imports and registry pulls alike:
the key that pins an imported image's content for one platform, the record that remembers
its layers, and whether a blob the cache already holds can stand in for one of them."""

from __future__ import annotations

import hashlib

from engine.cache.ingest import Ingested, ingest_stream
from engine.cache.provenance import read_facts, set_diff_id
from engine.cache.records import IMPORT_CODEC, LayerRecord, RecordIndex
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.events import EventSink, LayerCached
from engine.oci import mediatypes
from engine.oci.canonical import canonical_json
from engine.oci.descriptor import Descriptor, Platform
from engine.oci.digest import Digest

IMPORT_FORMAT = "vinci-import/1"
MEDIA_TYPE_FOR = {
    "none": mediatypes.OCI_LAYER,
    "gzip": mediatypes.OCI_LAYER_GZIP,
    "zstd": mediatypes.OCI_LAYER_ZSTD,
}


def import_key(identity: str, platform: Platform) -> str:
    """The cache key of an import: its content identity and the platform chosen."""
    material = {"format": IMPORT_FORMAT, "image": identity, "platform": str(platform)}
    return hashlib.sha256(canonical_json(material)).hexdigest()


def cached_import(store: BlobStore, key: str, index: int, sink: EventSink) -> LayerRecord | None:
    record = RecordIndex(store).get(key)
    if record is None:
        return None
    config = dict(record.extra).get("config")
    if config and not store.has_blob(Digest.parse(config)):
        return None
    sink(LayerCached(index, key, record.descriptors))
    return record


def known_layer(store: BlobStore, digest: Digest | None, size: int, diff_id: Digest) -> int | None:
    """The uncompressed size of a layer already in the cache with this diff_id verified, else
    None (it must be read, and checked)."""
    if digest is None or not store.has_blob(digest, size):
        return None
    facts = read_facts(store, digest)
    if facts.diff_id != diff_id:
        return None
    return facts.uncompressed_size


def verify_cached_layer(
    store: BlobStore,
    digest: Digest,
    size: int,
    media_type: str,
    diff_id: Digest,
    what: str,
    cancel: CancelToken | None,
) -> Ingested:
    """Check a blob we already hold (built here, say) against the diff_id an import claims."""
    with store.open_blob(digest) as f:
        got = ingest_stream(
            store,
            f,
            what,
            digest=digest,
            size=size,
            compression=mediatypes.layer_compression(media_type),
            diff_id=diff_id,
            cancel=cancel,
        )
    assert got.diff_id is not None
    set_diff_id(store, got.digest, got.diff_id, got.uncompressed_size)
    return got


def make_record(
    key: str,
    summary: str,
    layers: list[tuple[Descriptor, Digest, int]],
    config: Digest,
    manifest: Digest | None,
) -> LayerRecord:
    extra = [("config", str(config))]
    if manifest is not None:
        extra.append(("manifest", str(manifest)))
    return LayerRecord(
        key=key,
        descriptors=tuple(d for d, _, _ in layers),
        diff_ids=tuple(i for _, i, _ in layers),
        codec=IMPORT_CODEC,
        uncompressed_sizes=tuple(u for _, _, u in layers),
        summary=summary,
        extra=tuple(sorted(extra)),
    )
