"""Reading images from a registry: `resolve` (tag -> digest, for pinning) and `import_remote`
(the import-oci layer: an image pinned by digest, brought into the cache).

Every manifest is checked against the digest that named it, every blob against its descriptor,
every layer against the diff_id its config lists, as it streams into the cache. Each blob
fetched is recorded with the repository it came from (sources.py), so that pushing an image
built on it to another repository of the same registry mounts it instead of uploading it.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from engine.cache.imported import (
    cached_import,
    import_key,
    known_layer,
    make_record,
    verify_cached_layer,
)
from engine.cache.ingest import Ingest
from engine.cache.provenance import add_source
from engine.cache.records import LayerRecord, RecordIndex
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.errors import BuildCancelled, CorruptImportedImage, ReferenceNotByDigest
from engine.events import EventSink, ProgressThrottle
from engine.oci import mediatypes
from engine.oci.descriptor import Descriptor, Platform
from engine.oci.digest import Digest
from engine.oci.manifests import (
    ImageConfig,
    ImageManifest,
    check_config,
    choose_platform,
    index_entries,
    is_index,
    media_type_of,
    parse_config,
    parse_json,
    platforms_listed,
    resolve_image,
)
from engine.oci.reference import ImageReference
from engine.registry.client import RegistryClient
from engine.registry.options import RegistryOptions
from engine.registry.transport import SMALL_BODY_CAP
from engine.spec.model import ImportOCISpec, layer_summary

# A config is read whole into memory: capped like manifests and tokens (containerd's 4 MiB).
MAX_CONFIG_BYTES = SMALL_BODY_CAP


@dataclass(frozen=True)
class Resolution:
    """What a reference names now: `digest` pins it; for an index, `platform_manifest` is the
    image the spec's platform would use."""

    reference: ImageReference
    digest: Digest
    media_type: str
    platform: Platform
    platform_manifest: Descriptor | None
    platforms: tuple[str, ...]

    @property
    def pinned(self) -> str:
        return f"{self.reference.name}@{self.digest}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reference": str(self.reference),
            "pinned": self.pinned,
            "digest": str(self.digest),
            "media_type": self.media_type,
            "platform": str(self.platform),
            "platforms": list(self.platforms),
        }
        if self.platform_manifest is not None:
            out["platform_manifest"] = str(self.platform_manifest.digest)
        return out


def _fetch_document(client: RegistryClient, repository: str, cancel: CancelToken | None) -> Any:
    def fetch(d: Descriptor) -> bytes:
        manifest = client.get_manifest(repository, str(d.digest), cancel)
        if d.size and len(manifest.data) != d.size:
            raise CorruptImportedImage(
                f"corrupt imported image {client.registry}/{repository}: manifest {d.digest} is "
                f"{len(manifest.data)} bytes, its descriptor says {d.size}"
            )
        return manifest.data

    return fetch


def _fetch_config(
    client: RegistryClient,
    repository: str,
    config: Descriptor,
    store: BlobStore,
    where: str,
    cancel: CancelToken | None,
) -> ImageConfig:
    if config.size > MAX_CONFIG_BYTES:
        raise CorruptImportedImage(f"corrupt imported image {where}: config is implausibly large")
    if not store.has_blob(config.digest, config.size):
        sink = Ingest(store, where)
        try:
            client.fetch_blob(repository, config.digest, config.size, sink, cancel=cancel)
            sink.commit(config.digest, config.size)
        finally:
            sink.discard()
    return parse_config(store.read_blob(config.digest), config.digest, where)


def resolve(
    reference: ImageReference,
    platform: Platform,
    options: RegistryOptions | None = None,
    cancel: CancelToken | None = None,
) -> Resolution:
    """The digest `reference` names now, and the manifest `platform` would use."""
    with RegistryClient(reference.registry, options) as client:
        manifest = client.get_manifest(reference.repository, reference.reference, cancel)
        doc = parse_json(manifest.data, f"{reference}")
        media_type = media_type_of(manifest.media_type, doc)
        if is_index(media_type, doc):
            entries = index_entries(doc, str(reference))
            chosen = choose_platform(entries, platform, str(reference))
            return Resolution(
                reference,
                manifest.digest,
                media_type,
                platform,
                chosen,
                tuple(platforms_listed(entries)),
            )
        # A single image: say which platform it is for, from its config.
        config = parse_json(manifest.data, str(reference)).get("config") or {}
        found: tuple[str, ...] = ()
        if isinstance(config, dict) and config.get("digest"):
            desc = Descriptor.from_json(config)
            data = _small_blob(client, reference.repository, desc, cancel)
            parsed = parse_config(data, desc.digest, str(reference))
            if parsed.platform is not None:
                found = (str(parsed.platform),)
                check_config(parsed, len(parsed.diff_ids), platform, str(reference))
        return Resolution(
            reference,
            manifest.digest,
            media_type,
            platform,
            Descriptor(media_type, manifest.digest, len(manifest.data)),
            found,
        )


class _Bytes:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def reset(self) -> None:
        self.data.clear()


def _small_blob(
    client: RegistryClient, repository: str, d: Descriptor, cancel: CancelToken | None
) -> bytes:
    if d.size > MAX_CONFIG_BYTES:
        raise CorruptImportedImage(f"{client.registry}/{repository}: config is implausibly large")
    sink = _Bytes()
    client.fetch_blob(repository, d.digest, d.size, sink, cancel=cancel)
    data = bytes(sink.data)
    if hashlib.sha256(data).hexdigest() != d.digest.hex:
        raise CorruptImportedImage(
            f"corrupt imported image {client.registry}/{repository}: blob {d.digest} does not "
            "match its digest"
        )
    return data


def import_remote(
    node: ImportOCISpec,
    store: BlobStore,
    platform: Platform,
    index: int,
    sink: EventSink,
    cancel: CancelToken | None,
    options: RegistryOptions | None = None,
) -> tuple[LayerRecord, bool]:
    """The import-oci layer: the pinned image's layers into the cache (see module doc)."""
    ref = node.ref
    if ref.digest is None:
        raise ReferenceNotByDigest(
            f"{ref} is not pinned by digest; run `vinci resolve {ref}` and use the "
            "repository@sha256:… it prints"
        )
    key = import_key(f"registry:{ref.digest}", platform)
    cached = cached_import(store, key, index, sink)
    if cached is not None:
        return cached, True
    where = f"{ref.name}@{ref.digest}"
    repository = ref.repository
    token = CancelToken(cancel)
    with RegistryClient(ref.registry, options) as client:
        root = Descriptor("", ref.digest, 0)
        image = resolve_image(root, _fetch_document(client, repository, token), platform, where)
        layers = _fetch_image(client, repository, image, store, platform, where, index, sink, token)
    add_source(store, image.config.digest, ref.registry, repository)
    record = make_record(
        key, layer_summary(node), layers, image.config.digest, image.descriptor.digest
    )
    RecordIndex(store).put(record)
    return record, False


def _fetch_image(
    client: RegistryClient,
    repository: str,
    image: ImageManifest,
    store: BlobStore,
    platform: Platform,
    where: str,
    index: int,
    sink: EventSink,
    token: CancelToken,
) -> list[tuple[Descriptor, Digest, int]]:
    """The config and the layers, all at once: a layer needs its diff_id (from the config)
    only to be checked, so the downloads do not wait for the config; nothing is stored
    before its check. The largest layers start first, so the last to finish is a small one."""
    missing = [d for d in image.layers if not store.has_blob(d.digest, d.size)]
    progress = ProgressThrottle(sink, index, "fetching", sum(d.size for d in missing))
    lock = threading.Lock()

    def advance(n: int) -> None:
        with lock:  # several layers download at once; the throttle counts for all
            progress.advance(n)

    def load_config() -> ImageConfig:
        config = _fetch_config(client, repository, image.config, store, where, token)
        check_config(config, len(image.layers), platform, where)
        return config

    def one(i: int, d: Descriptor) -> tuple[Descriptor, Digest, int]:
        usize: int | None = None
        fetched: tuple[Digest, int] | None = None
        if store.has_blob(d.digest, d.size):
            diff_id = config_job.result().diff_ids[i]
            usize = known_layer(store, d.digest, d.size, diff_id)
            if usize is None:
                # Held already (built or pushed from here) but never checked against this
                # diff_id.
                got = verify_cached_layer(
                    store, d.digest, d.size, d.media_type, diff_id, where, token
                )
                usize = got.uncompressed_size
        else:
            ingest = Ingest(store, where, mediatypes.layer_compression(d.media_type))
            try:
                client.fetch_blob(repository, d.digest, d.size, ingest, advance, token)
                diff_id = config_job.result().diff_ids[i]
                got = ingest.commit(d.digest, d.size, diff_id)
            finally:
                ingest.discard()
            assert got.diff_id is not None
            fetched = (got.diff_id, got.uncompressed_size)
            usize = got.uncompressed_size
        add_source(store, d.digest, client.registry, repository, fetched)
        return d, diff_id, usize

    workers = max(1, min(client.options.max_requests_per_host, len(image.layers)))
    # One thread more for the config; the host's request slots still bound the requests.
    with ThreadPoolExecutor(workers + 1, thread_name_prefix="vinci-pull") as pool:
        config_job: Future[ImageConfig] = pool.submit(load_config)
        order = sorted(range(len(image.layers)), key=lambda i: -image.layers[i].size)
        jobs = {i: pool.submit(one, i, image.layers[i]) for i in order}
        futures: list[Future[Any]] = [config_job, *jobs.values()]
        wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.done() and f.exception() is not None for f in futures):
            token.cancel()
            wait(futures)
            # The config's own error first: the layers waiting for it repeat it.
            errors = [e for f in futures if (e := f.exception()) is not None]
            real = [e for e in errors if not isinstance(e, BuildCancelled)]
            raise (real or errors)[0]
        return [jobs[i].result() for i in range(len(image.layers))]


def fetch_config(
    reference: ImageReference,
    platform: Platform,
    options: RegistryOptions | None = None,
    cancel: CancelToken | None = None,
) -> tuple[Descriptor, bytes]:
    """The config blob of the image `reference` names (from an index, the one for
    `platform`), checked against its digest: `vinci config`."""
    found = resolve(reference, platform, options, cancel)
    chosen = found.platform_manifest
    assert chosen is not None  # resolve names one for an image and for an index alike
    with RegistryClient(reference.registry, options) as client:
        manifest = client.get_manifest(reference.repository, str(chosen.digest), cancel)
        config = parse_json(manifest.data, str(reference)).get("config")
        if not isinstance(config, dict) or not config.get("digest"):
            raise CorruptImportedImage(f"{reference}: the manifest names no config")
        descriptor = Descriptor.from_json(config)
        return descriptor, _small_blob(client, reference.repository, descriptor, cancel)
