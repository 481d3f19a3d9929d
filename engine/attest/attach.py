"""Push a built image's SBOMs and provenance as OCI 1.1 referrers of its manifest
(engine/registry/referrers.py does the registry's half)."""

from __future__ import annotations

from engine.attest.common import iso_time
from engine.attest.provenance import MEDIA_TYPE as PROVENANCE_TYPE
from engine.attest.sbom import FORMATS
from engine.builder.result import Built
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.oci.reference import ImageReference
from engine.registry.client import RegistryClient
from engine.registry.options import RegistryOptions
from engine.registry.referrers import Referrer, push_referrer


def artifact_type(kind: str) -> str:
    """The artifactType of a document kind ("spdx", "cyclonedx", "provenance")."""
    return FORMATS[kind][1] if kind in FORMATS else PROVENANCE_TYPE


def attach(
    result: Built,
    docs: dict[str, bytes],
    target: ImageReference,
    store: BlobStore,
    options: RegistryOptions | None = None,
    cancel: CancelToken | None = None,
) -> list[tuple[Referrer, str]]:
    """Push each document as a referrer of the image (or index) `result` made; (entry, "api"
    or the fallback tag)."""
    out = []
    with RegistryClient(target.registry, options) as client:
        for kind in sorted(docs):
            annotations = {
                "org.opencontainers.image.created": iso_time(result.created),
                "dev.vinci.kind": kind,
            }
            out.append(
                push_referrer(
                    client,
                    store,
                    target,
                    result.manifest,
                    artifact_type(kind),
                    docs[kind],
                    annotations,
                    cancel,
                )
            )
    return out
