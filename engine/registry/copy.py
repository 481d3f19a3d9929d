"""Copying an image between repositories, unchanged: `vinci copy SRC DST`.

The manifest (or index, with every manifest it lists) is put under DST byte for byte, so its
digest is the same; before it, every blob it names: skipped when DST has it, mounted from SRC
when both are on one registry and the registry allows it, else fetched into the cache (on disk,
checked against its digest, in bounded chunks) and uploaded from there the way a push uploads
(engine/registry/upload.py). A blob is never held in memory; a blob already in the cache is
not fetched again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from engine.cache.ingest import Ingest
from engine.cache.provenance import add_source
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.errors import RegistryError
from engine.oci.descriptor import Descriptor
from engine.oci.digest import Digest
from engine.oci.reference import ImageReference
from engine.registry.client import Manifest, RegistryClient
from engine.registry.options import RegistryOptions
from engine.registry.upload import upload_blob

MAX_DEPTH = 4  # an index of indexes of… deeper than this is not an image


@dataclass
class CopyResult:
    source: str
    destination: str  # registry/repository:tag, or @digest
    digest: Digest
    media_type: str
    manifests: int = 0
    uploaded: int = 0
    mounted: int = 0
    skipped: int = 0
    bytes_sent: int = 0
    blobs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "digest": str(self.digest),
            "media_type": self.media_type,
            "manifests": self.manifests,
            "uploaded": self.uploaded,
            "mounted": self.mounted,
            "skipped": self.skipped,
            "bytes_sent": self.bytes_sent,
        }


def copy_image(
    source: ImageReference,
    destination: ImageReference,
    store: BlobStore,
    options: RegistryOptions | None = None,
    cancel: CancelToken | None = None,
) -> CopyResult:
    """Copy the manifest or index `source` names to `destination` (its tag, else by digest)."""
    same = source.registry == destination.registry
    with RegistryClient(source.registry, options) as src:
        dst_client = src if same else RegistryClient(destination.registry, options)
        try:
            top = src.get_manifest(source.repository, source.reference, cancel)
            where = f"{destination.registry}/{destination.repository}"
            name = f"{where}:{destination.tag}" if destination.tag else f"{where}@{top.digest}"
            result = CopyResult(str(source), name, top.digest, top.media_type)
            job = _Copy(src, dst_client, source, destination, store, result, cancel)
            job.manifest(top, 0)
            reference = destination.tag or str(top.digest)
            dst_client.put_manifest(
                destination.repository, reference, top.data, top.media_type, cancel
            )
        finally:
            if not same:
                dst_client.close()
    return result


@dataclass
class _Copy:
    src: RegistryClient
    dst: RegistryClient
    source: ImageReference
    destination: ImageReference
    store: BlobStore
    result: CopyResult
    cancel: CancelToken | None

    def manifest(self, manifest: Manifest, depth: int) -> None:
        """Everything `manifest` refers to, into the destination (not the manifest itself)."""
        if depth > MAX_DEPTH:
            raise RegistryError(f"{self.source}: indexes nested more than {MAX_DEPTH} deep")
        self.result.manifests += 1
        try:
            doc = json.loads(manifest.data)
        except ValueError:
            raise RegistryError(f"{self.source}: manifest {manifest.digest} is not JSON") from None
        if not isinstance(doc, dict):
            raise RegistryError(f"{self.source}: manifest {manifest.digest} is not an object")
        if isinstance(doc.get("manifests"), list):
            for raw in doc["manifests"]:
                child_desc = Descriptor.from_json(raw)
                child = self.src.get_manifest(
                    self.source.repository, str(child_desc.digest), self.cancel
                )
                self.manifest(child, depth + 1)
                self.dst.put_manifest(
                    self.destination.repository,
                    str(child.digest),
                    child.data,
                    child.media_type or child_desc.media_type,
                    self.cancel,
                )
            return
        blobs = [doc.get("config"), *(doc.get("layers") or [])]
        for raw in blobs:
            if isinstance(raw, dict) and raw.get("digest"):
                self.blob(Descriptor.from_json(raw))

    def blob(self, d: Descriptor) -> None:
        repository = self.destination.repository
        if self.dst.head_blob(repository, d.digest, push=True) is not None:
            self.result.skipped += 1
            return
        if self.src is self.dst:
            start = self.dst.start_upload(repository, mount=d.digest, source=self.source.repository)
            if start.mounted:
                self.result.mounted += 1
                return
        if not self.store.has_blob(d.digest, d.size):
            self.fetch(d)
        outcome = upload_blob(
            self.dst,
            repository,
            d.digest,
            d.size,
            self.store.blob_path(d.digest),
            [],
            cancel=self.cancel,
        )
        if outcome.how == "uploaded":
            self.result.uploaded += 1
            self.result.bytes_sent += outcome.bytes_sent
        else:
            self.result.skipped += 1
        add_source(self.store, d.digest, self.destination.registry, repository)

    def fetch(self, d: Descriptor) -> None:
        where = f"{self.source.registry}/{self.source.repository}"
        sink = Ingest(self.store, where)  # not a layer's diff_id: the bytes as they are
        try:
            self.src.fetch_blob(self.source.repository, d.digest, d.size, sink, cancel=self.cancel)
            sink.commit(d.digest, d.size)
        finally:
            sink.discard()
        add_source(self.store, d.digest, self.source.registry, self.source.repository)
