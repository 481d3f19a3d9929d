"""Sends a BuildResult to its output target."""

from __future__ import annotations

from engine.build import BuildResult
from engine.cache.store import BlobStore
from engine.errors import OutputError
from engine.output import OutputTarget
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
    raise OutputError(f"{target.kind} output is not available yet")
