"""OCI 1.1 referrers: artifacts (an SBOM, a provenance statement) whose manifest names an
image manifest as its `subject`, pushed beside the image and listed from it.

An artifact is an image manifest with `artifactType` set, the empty config descriptor the
image spec prescribes for artifacts without a config (`{}`, application/vnd.oci.empty.v1+json)
and one layer holding the document. It is pushed by digest like any image (push.py). Then:

- a registry with the referrers API (GET /v2/<name>/referrers/<digest> answers 200 with an
  index) indexes it itself from the subject field;
- one without (distribution 2.8, Docker Hub, GHCR) gets the tag-schema fallback: the tag
  `sha256-<hex of the subject>` holds an index of the subject's referrers, read, extended and
  written back (read-modify-write; a concurrent writer may lose an entry, as with every
  client of the fallback, and a repeated push of the same artifact adds nothing).

`list_referrers` asks the API first and falls back to the tag the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.errors import RegistryError
from engine.oci import mediatypes
from engine.oci.canonical import canonical_json
from engine.oci.descriptor import Descriptor
from engine.oci.digest import Digest
from engine.oci.reference import ImageReference
from engine.registry.auth import pull_scope
from engine.registry.client import RegistryClient
from engine.registry.push import push_image

EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"


@dataclass(frozen=True)
class Referrer:
    """One entry of a subject's referrers index."""

    artifact_type: str
    digest: str
    size: int
    media_type: str
    annotations: tuple[tuple[str, str], ...]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "artifactType": self.artifact_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Referrer:
        return cls(
            str(data.get("artifactType") or ""),
            str(data["digest"]),
            int(data["size"]),
            str(data.get("mediaType") or mediatypes.OCI_MANIFEST),
            tuple(sorted((data.get("annotations") or {}).items())),
        )


def fallback_tag(subject: Digest) -> str:
    """The tag-schema fallback's tag for `subject`: `sha256-<hex>`."""
    return f"{subject.algorithm}-{subject.hex}"


def artifact_manifest(
    store: BlobStore,
    subject: Descriptor,
    artifact_type: str,
    document: bytes,
    annotations: dict[str, str],
) -> tuple[Descriptor, Referrer]:
    """Put the artifact's blobs and manifest into `store`; its descriptor and index entry."""
    layer = Descriptor(artifact_type, store.put_bytes(document), len(document))
    empty = store.put_bytes(EMPTY_JSON)
    manifest = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "digest": str(empty),
            "size": len(EMPTY_JSON),
            "data": "e30=",
        },
        "layers": [layer.to_json()],
        "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_json(),
        "annotations": dict(annotations),
    }
    data = canonical_json(manifest)
    digest = store.put_bytes(data)
    descriptor = Descriptor(mediatypes.OCI_MANIFEST, digest, len(data))
    entry = Referrer(
        artifact_type,
        str(digest),
        len(data),
        mediatypes.OCI_MANIFEST,
        tuple(sorted(annotations.items())),
    )
    return descriptor, entry


def push_referrer(
    client: RegistryClient,
    store: BlobStore,
    target: ImageReference,
    subject: Descriptor,
    artifact_type: str,
    document: bytes,
    annotations: dict[str, str],
    cancel: CancelToken | None = None,
) -> tuple[Referrer, str]:
    """Push one artifact referring to `subject` in `target`'s repository; the entry and how
    it was indexed ("api" or the fallback tag)."""
    descriptor, entry = artifact_manifest(store, subject, artifact_type, document, annotations)
    push_image(store, descriptor, target, (), client=client, cancel=cancel)
    if referrers_api(client, target.repository, subject.digest, cancel) is not None:
        return entry, "api"
    tag = fallback_tag(subject.digest)
    current = _fallback_index(client, target.repository, subject.digest, cancel)
    if not any(r.digest == entry.digest for r in current):
        current.append(entry)
        index = {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_INDEX,
            "manifests": [r.to_json() for r in current],
        }
        client.put_manifest(
            target.repository, tag, canonical_json(index), mediatypes.OCI_INDEX, cancel
        )
    return entry, tag


def referrers_api(
    client: RegistryClient, repository: str, subject: Digest, cancel: CancelToken | None = None
) -> list[Referrer] | None:
    """The referrers the API lists, or None when the registry has no referrers API."""
    what = f"GET referrers of {repository}@{subject}"

    def once() -> list[Referrer] | None:
        reply = client.request(
            "GET",
            f"/v2/{repository}/referrers/{subject}",
            scopes=[pull_scope(repository)],
            what=what,
            headers={"Accept": mediatypes.OCI_INDEX},
        )
        if reply.status_code != 200:
            return None  # 404 (no such route) or 400/405: the fallback is what works
        media = reply.headers.get("Content-Type", "").split(";")[0].strip()
        if media and media != mediatypes.OCI_INDEX:
            return None
        return _entries(reply.content, f"{client.registry}: {what}")

    result: list[Referrer] | None = client.retrying(once, what, cancel)
    return result


def _fallback_index(
    client: RegistryClient, repository: str, subject: Digest, cancel: CancelToken | None
) -> list[Referrer]:
    tag = fallback_tag(subject)
    if client.head_manifest(repository, tag, cancel) is None:
        return []
    manifest = client.get_manifest(repository, tag, cancel)
    return _entries(manifest.data, f"{client.registry}/{repository}:{tag}")


def _entries(data: bytes, where: str) -> list[Referrer]:
    try:
        index = json.loads(data)
        return [Referrer.from_json(m) for m in index.get("manifests") or []]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise RegistryError(f"{where}: not a referrers index ({e})") from None


def list_referrers(
    client: RegistryClient, repository: str, subject: Digest, cancel: CancelToken | None = None
) -> tuple[list[Referrer], str]:
    """The artifacts referring to `subject`, and where they were found ("api" or the tag)."""
    found = referrers_api(client, repository, subject, cancel)
    if found is not None:
        return found, "api"
    return _fallback_index(client, repository, subject, cancel), fallback_tag(subject)
