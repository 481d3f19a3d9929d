"""Pushing an image from the cache to a registry repository.

Blobs first (config and layers, a few at a time), each the cheapest way upload.py finds:
already there, mounted from another repository of the same registry, or uploaded. Then the
manifest, byte for byte as built, under every tag (or by digest alone). Every blob pushed is
remembered as present in the target repository, so the next push of an image sharing it to
another repository of that registry mounts it.

Progress goes to the build's event sink: LayerProgress(phase "pushing") per layer, and
PushStarted / BlobPushed / BlobMounted / BlobSkipped / PushFinished.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from engine.cache.provenance import add_source, mount_candidates
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.errors import BuildCancelled, RegistryError
from engine.events import (
    BlobMounted,
    BlobPushed,
    BlobSkipped,
    EventSink,
    Log,
    ProgressThrottle,
    PushFinished,
    PushStarted,
    discard,
)
from engine.oci import mediatypes
from engine.oci.descriptor import Descriptor
from engine.oci.digest import Digest
from engine.oci.reference import ImageReference
from engine.registry.client import RegistryClient
from engine.registry.options import RegistryOptions
from engine.registry.upload import UploadOutcome, upload_blob

CONFIG_INDEX = -1


@dataclass(frozen=True)
class PushResult:
    repository: str  # registry/repository
    digest: Digest
    tags: tuple[str, ...]
    uploaded: int
    mounted: int
    skipped: int
    bytes_sent: int
    seconds: float

    def references(self) -> list[str]:
        refs = [f"{self.repository}:{t}" for t in self.tags]
        return refs or [f"{self.repository}@{self.digest}"]

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "digest": str(self.digest),
            "tags": list(self.tags),
            "references": self.references(),
            "blobs": {"uploaded": self.uploaded, "mounted": self.mounted, "skipped": self.skipped},
            "bytes_sent": self.bytes_sent,
            "seconds": round(self.seconds, 6),
        }


def manifest_blobs(store: BlobStore, manifest: Descriptor) -> tuple[bytes, list[Descriptor]]:
    """The manifest's bytes and the blobs it needs (config first), each once."""
    data = store.read_blob(manifest.digest)
    if manifest.media_type not in mediatypes.MANIFESTS:
        raise RegistryError(f"cannot push a {manifest.media_type}: only image manifests")
    parsed = json.loads(data)
    blobs = [Descriptor.from_json(parsed["config"])]
    blobs += [Descriptor.from_json(x) for x in parsed.get("layers", [])]
    seen: set[Digest] = set()
    unique = []
    for d in blobs:
        if d.digest not in seen:
            seen.add(d.digest)
            unique.append(d)
    return data, unique


def push_image(
    store: BlobStore,
    manifest: Descriptor,
    target: ImageReference,
    tags: Sequence[str],
    *,
    options: RegistryOptions | None = None,
    sink: EventSink = discard,
    cancel: CancelToken | None = None,
    layer_indexes: Mapping[Digest, int] | None = None,
    client: RegistryClient | None = None,
) -> PushResult:
    """Push the cached image `manifest` to `target`'s repository under `tags`. An image
    index: every manifest it lists first (by digest), then the index under `tags`."""
    if manifest.media_type in mediatypes.INDEXES:
        return _push_index(
            store, manifest, target, tags, options, sink, cancel, layer_indexes, client
        )
    started = time.monotonic()
    data, blobs = manifest_blobs(store, manifest)
    config_digest = blobs[0].digest
    indexes = dict(layer_indexes or {})
    token = CancelToken(cancel)
    own = client is None
    api = client if client is not None else RegistryClient(target.registry, options)
    name = target.name
    try:
        api.connect()  # once, before the workers: they would each wait out a dead registry
        sink(PushStarted(name, len(blobs), sum(b.size for b in blobs)))

        def one(blob: Descriptor) -> tuple[Descriptor, UploadOutcome]:
            index = CONFIG_INDEX if blob.digest == config_digest else indexes.get(blob.digest, -1)
            throttle: list[ProgressThrottle | None] = [None]

            def restart() -> None:
                throttle[0] = (
                    ProgressThrottle(sink, index, "pushing", blob.size) if index >= 0 else None
                )

            def advance(n: int) -> None:
                if throttle[0] is not None:
                    throttle[0].advance(n)

            failed = [0]

            def retrying(message: str, delay: float) -> None:
                # Said as it happens: a retried upload is otherwise silent for its back-off.
                failed[0] += 1
                sink(
                    Log(
                        "warning",
                        f"push of {blob.digest.short}: attempt {failed[0]} failed ({message}); "
                        f"attempt {failed[0] + 1} of {api.options.attempts} in {delay:.1f} s",
                    )
                )

            outcome = upload_blob(
                api,
                target.repository,
                blob.digest,
                blob.size,
                store.blob_path(blob.digest),
                mount_candidates(store, blob.digest, target.registry, target.repository),
                advance,
                token,
                restart,
                retrying,
            )
            add_source(store, blob.digest, target.registry, target.repository)
            if outcome.how == "mounted":
                sink(BlobMounted(blob.digest, blob.size, index, outcome.source))
            elif outcome.how == "exists":
                sink(BlobSkipped(blob.digest, blob.size, index))
            else:
                sink(BlobPushed(blob.digest, blob.size, index))
            return blob, outcome

        outcomes = _run_all(one, blobs, max(1, api.options.max_requests_per_host), token)
        pushed_tags = tuple(dict.fromkeys(tags))
        for reference in pushed_tags or (str(manifest.digest),):
            api.put_manifest(target.repository, reference, data, manifest.media_type, token)
        add_source(store, manifest.digest, target.registry, target.repository)
        result = PushResult(
            repository=name,
            digest=manifest.digest,
            tags=pushed_tags,
            uploaded=sum(1 for o in outcomes if o.how == "uploaded"),
            mounted=sum(1 for o in outcomes if o.how == "mounted"),
            skipped=sum(1 for o in outcomes if o.how == "exists"),
            bytes_sent=sum(o.bytes_sent for o in outcomes),
            seconds=time.monotonic() - started,
        )
        sink(PushFinished(name, manifest.digest, pushed_tags, result.bytes_sent, result.seconds))
        return result
    finally:
        if own:
            api.close()


def _push_index(
    store: BlobStore,
    index: Descriptor,
    target: ImageReference,
    tags: Sequence[str],
    options: RegistryOptions | None,
    sink: EventSink,
    cancel: CancelToken | None,
    layer_indexes: Mapping[Digest, int] | None,
    client: RegistryClient | None,
) -> PushResult:
    """Each of the index's manifests (a tag names nothing until all are there), then the
    index itself: a registry refuses an index whose manifests it does not hold."""
    started = time.monotonic()
    data = store.read_blob(index.digest)
    children = [Descriptor.from_json(m) for m in json.loads(data).get("manifests", [])]
    token = CancelToken(cancel)
    own = client is None
    api = client if client is not None else RegistryClient(target.registry, options)
    try:
        pushed = [
            push_image(
                store,
                child,
                target,
                (),
                options=options,
                sink=sink,
                cancel=token,
                layer_indexes=layer_indexes,
                client=api,
            )
            for child in children
        ]
        pushed_tags = tuple(dict.fromkeys(tags))
        for reference in pushed_tags or (str(index.digest),):
            api.put_manifest(target.repository, reference, data, index.media_type, token)
        add_source(store, index.digest, target.registry, target.repository)
    finally:
        if own:
            api.close()
    result = PushResult(
        repository=target.name,
        digest=index.digest,
        tags=pushed_tags,
        uploaded=sum(p.uploaded for p in pushed),
        mounted=sum(p.mounted for p in pushed),
        skipped=sum(p.skipped for p in pushed),
        bytes_sent=sum(p.bytes_sent for p in pushed),
        seconds=time.monotonic() - started,
    )
    sink(PushFinished(target.name, index.digest, pushed_tags, result.bytes_sent, result.seconds))
    return result


def _run_all(
    one: Any, blobs: list[Descriptor], workers: int, token: CancelToken
) -> list[UploadOutcome]:
    with ThreadPoolExecutor(min(workers, len(blobs)), thread_name_prefix="vinci-push") as pool:
        futures: list[Future[tuple[Descriptor, UploadOutcome]]] = [
            pool.submit(one, b) for b in blobs
        ]
        wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.done() and f.exception() is not None for f in futures):
            token.cancel()  # the other uploads stop at their next chunk
            wait(futures)
            errors = [e for f in futures if (e := f.exception()) is not None]
            real = [e for e in errors if not isinstance(e, BuildCancelled)]
            raise (real or errors)[0]
        return [f.result()[1] for f in futures]
