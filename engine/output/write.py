"""Sends a BuildResult to its output target."""

from __future__ import annotations

from engine.build import BuildResult
from engine.cache.store import BlobStore
from engine.errors import OutputError
from engine.output import OutputTarget
from engine.output.archive import write_archive
from engine.output.layout import write_layout


def write_output(target: OutputTarget, result: BuildResult, store: BlobStore) -> None:
    layers = [d for r in result.layers for d in r.record.descriptors]
    if target.kind == "oci":
        write_layout(
            target.path,
            store,
            result.manifest,
            result.config,
            layers,
            result.spec.tag,
            result.spec.platform,
        )
        return
    if target.kind in ("oci-archive", "docker-archive"):
        # One tarball serves both: an OCI archive that also carries docker's manifest.json.
        write_archive(
            target.path,
            store,
            result.manifest,
            result.config,
            layers,
            result.spec.tag,
            result.spec.platform,
            result.spec.image,
        )
        return
    raise OutputError(f"{target.kind} output is not available yet")
