"""Assembles the image config and manifest from layer results, as canonical JSON.

The config's `created` and our history entries come from the spec and SOURCE_DATE_EPOCH
only: never from a host path, however the spec spells it. An imported image's layers keep that
image's own history entries (its `empty_layer` ones too), ahead of ours. When an import layer
asks to inherit its image's config, that config is the base and the spec's `config` keys
override it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.cache.store import BlobStore
from engine.oci import mediatypes
from engine.oci.canonical import canonical_json
from engine.oci.descriptor import Descriptor, Platform
from engine.oci.digest import Digest
from engine.spec.model import ConfigSpec, Spec


@dataclass(frozen=True)
class LayerPart:
    """What assembly needs of one image layer."""

    descriptor: Descriptor
    diff_id: Digest


History = list[dict[str, Any]]


def built_history(summary: str, layers: int, created: int) -> History:
    """Our history entries for a layer node that made `layers` image layers."""
    return [{"created": rfc3339(created), "created_by": f"vinci: {summary}"}] * layers


def imported_history(config: dict[str, Any], layers: int, pinned_by: str, created: int) -> History:
    """The history entries an imported image brings: its own, when they account for its
    `layers` (as many entries without `empty_layer` as layers), else one per layer naming the
    digest that pins the image (never the path it was imported from)."""
    entries = [h for h in config.get("history") or [] if isinstance(h, dict)]
    if sum(1 for h in entries if not h.get("empty_layer")) == layers:
        return entries
    return built_history(f"import {pinned_by}", layers, created)


def rfc3339(epoch: int) -> str:
    # time, not datetime: the same string for the epochs a build accepts, 3 ms less start-up.
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def runtime_config(
    config: ConfigSpec, base: dict[str, Any] | None = None, run_as: str = ""
) -> dict[str, Any]:
    """The config's `config` object: the base image's, with the spec's keys over it;
    `run_as` is the user `accounts.run-as` names (the loader allows it or `config.user`)."""
    out: dict[str, Any] = dict(base or {})
    if run_as:
        out["User"] = run_as
    if config.entrypoint is not None:
        out["Entrypoint"] = list(config.entrypoint)
        # As docker does: a new entrypoint drops the base image's default arguments.
        if config.cmd is None:
            out.pop("Cmd", None)
    if config.cmd is not None:
        out["Cmd"] = list(config.cmd)
    if config.env:
        env: dict[str, str] = {}
        for item in out.get("Env") or []:
            name, _, value = str(item).partition("=")
            env[name] = value
        for name, value in config.env:
            env.pop(name, None)
            env[name] = value
        out["Env"] = [f"{k}={v}" for k, v in env.items()]
    if config.working_dir:
        out["WorkingDir"] = config.working_dir
    if config.user:
        out["User"] = config.user
    if config.labels:
        out["Labels"] = {**(out.get("Labels") or {}), **dict(config.labels)}
    if config.exposed_ports:
        out["ExposedPorts"] = {
            **(out.get("ExposedPorts") or {}),
            **{p: {} for p in config.exposed_ports},
        }
    if config.volumes:
        out["Volumes"] = {**(out.get("Volumes") or {}), **{v: {} for v in config.volumes}}
    if config.stop_signal:
        out["StopSignal"] = config.stop_signal
    return out


def image_config(
    spec: Spec,
    layers: Sequence[LayerPart],
    history: History,
    created: int,
    base: dict[str, Any] | None = None,
) -> dict[str, Any]:
    when = rfc3339(created)
    platform: Platform = spec.platform
    config: dict[str, Any] = {
        **platform.to_json(),
        "created": when,
        "config": runtime_config(spec.config, base, spec.accounts.user if spec.accounts else ""),
        "rootfs": {"type": "layers", "diff_ids": [str(p.diff_id) for p in layers]},
        "history": history,
    }
    return config


def image_manifest(
    spec: Spec,
    config: Descriptor,
    layers: Sequence[LayerPart],
    base: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The manifest; `base` are the imported base's annotations, under the spec's own."""
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [p.descriptor.to_json() for p in layers],
    }
    annotations = {**dict(base), **dict(spec.annotations)}
    if annotations:
        manifest["annotations"] = annotations
    return manifest


def assemble_index(
    spec: Spec, manifests: Sequence[tuple[Descriptor, Platform]], store: BlobStore
) -> Descriptor:
    """Store the OCI image index of one manifest per platform (in the spec's order, with the
    spec's annotations) in the cache; return its descriptor."""
    index: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": [
            Descriptor(d.media_type, d.digest, d.size, platform=p).to_json() for d, p in manifests
        ],
    }
    if spec.annotations:
        index["annotations"] = dict(spec.annotations)
    data = canonical_json(index)
    return Descriptor(mediatypes.OCI_INDEX, store.put_bytes(data), len(data))


def assemble(
    spec: Spec,
    layers: Sequence[LayerPart],
    history: History,
    store: BlobStore,
    created: int,
    base: dict[str, Any] | None = None,
    annotations: Sequence[tuple[str, str]] = (),
) -> tuple[Descriptor, Descriptor]:
    """Store config and manifest in the cache; return (manifest, config) descriptors.
    `annotations` name the imported base (engine/builder/pool.py), under the spec's own."""
    config_bytes = canonical_json(image_config(spec, layers, history, created, base))
    config = Descriptor(mediatypes.OCI_CONFIG, store.put_bytes(config_bytes), len(config_bytes))
    manifest_bytes = canonical_json(image_manifest(spec, config, layers, annotations))
    manifest = Descriptor(
        mediatypes.OCI_MANIFEST, store.put_bytes(manifest_bytes), len(manifest_bytes)
    )
    return manifest, config
