"""Manifests and indexes of images being imported: parsing, choosing, checking.

Shared by local imports and registry imports. An index (OCI index or Docker manifest list) is
resolved to the one image for the spec's platform; an image whose config names another
platform is refused the same way. Layer media types are carried over as the OCI equivalents of
the same bytes (a Docker gzip layer *is* an OCI tar+gzip layer), so digests never change.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.errors import CorruptImportedImage, ImageImportError, NoCompatibleImage
from engine.oci import mediatypes
from engine.oci.descriptor import Descriptor, Platform
from engine.oci.digest import Digest

MAX_INDEX_DEPTH = 4
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
# Same bytes, OCI name: what our OCI manifest lists for a layer taken from a Docker manifest.
_OCI_EQUIVALENT = {
    mediatypes.DOCKER_LAYER_GZIP: mediatypes.OCI_LAYER_GZIP,
    DOCKER_LAYER: mediatypes.OCI_LAYER,
    mediatypes.OCI_LAYER: mediatypes.OCI_LAYER,
    mediatypes.OCI_LAYER_GZIP: mediatypes.OCI_LAYER_GZIP,
    mediatypes.OCI_LAYER_ZSTD: mediatypes.OCI_LAYER_ZSTD,
}
# Entries of an index that are not runnable images (buildx attestations).
_NOT_A_PLATFORM = Platform("unknown", "unknown")


@dataclass(frozen=True)
class ImageManifest:
    """What an import needs from an image manifest: its config and its layers."""

    descriptor: Descriptor
    config: Descriptor
    layers: tuple[Descriptor, ...]  # media types already the OCI equivalents
    # The platforms of the index it was chosen from (none: it was not in an index).
    platforms: tuple[Platform, ...] = ()


def parse_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise CorruptImportedImage(f"corrupt imported image {what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise CorruptImportedImage(f"corrupt imported image {what} is not a JSON object")
    return value


def media_type_of(descriptor_type: str, data: dict[str, Any]) -> str:
    """The document's own mediaType where it states one, else the descriptor's."""
    stated = data.get("mediaType")
    return str(stated) if stated else descriptor_type


def is_index(media_type: str, data: dict[str, Any]) -> bool:
    return media_type in mediatypes.INDEXES or ("manifests" in data and "layers" not in data)


def _descriptor(value: Any, what: str) -> Descriptor:
    try:
        return Descriptor.from_json(value)
    except (KeyError, TypeError, ValueError):
        raise CorruptImportedImage(f"corrupt imported image {what} is not a descriptor") from None


def index_entries(data: dict[str, Any], what: str) -> list[Descriptor]:
    entries = data.get("manifests")
    if not isinstance(entries, list):
        raise CorruptImportedImage(f"corrupt imported image {what} has no manifests list")
    return [_descriptor(e, f"{what} manifests[{i}]") for i, e in enumerate(entries)]


def platforms_listed(entries: list[Descriptor]) -> list[str]:
    return sorted(
        {
            str(e.platform)
            for e in entries
            if e.platform is not None and e.platform != _NOT_A_PLATFORM
        }
    )


def choose_platform(entries: list[Descriptor], platform: Platform, where: str) -> Descriptor:
    """The entry for `platform`: an exact variant match first, then a compatible one."""
    usable = [e for e in entries if e.platform is not None and e.platform.matches(platform)]
    exact = [e for e in usable if e.platform is not None and e.platform.variant == platform.variant]
    if exact or usable:
        return (exact or usable)[0]
    present = platforms_listed(entries)
    holds = ", ".join(present) if present else "no platform-labelled images"
    raise NoCompatibleImage(
        f"{where}: no image for {platform}; the index holds {holds}", tuple(present)
    )


def parse_image_manifest(descriptor: Descriptor, data: bytes, where: str) -> ImageManifest:
    doc = parse_json(data, f"{where}: manifest {descriptor.digest}")
    media_type = media_type_of(descriptor.media_type, doc)
    if media_type not in mediatypes.MANIFESTS and "layers" not in doc:
        raise ImageImportError(f"{where}: {descriptor.digest} is a {media_type}, not an image")
    if doc.get("schemaVersion") != 2 or "config" not in doc:
        raise CorruptImportedImage(
            f"corrupt imported image {where}: manifest {descriptor.digest} is not a schema 2 "
            "image manifest"
        )
    config = _descriptor(doc["config"], f"{where}: manifest config")
    layers = []
    for i, raw in enumerate(doc.get("layers") or []):
        layer = _descriptor(raw, f"{where}: manifest layers[{i}]")
        oci = _OCI_EQUIVALENT.get(layer.media_type)
        if oci is None:
            raise ImageImportError(
                f"{where}: layer {i} ({layer.digest.short}) has media type {layer.media_type}, "
                "which vinci cannot import (foreign/non-distributable layers are not fetched)"
            )
        layers.append(Descriptor(oci, layer.digest, layer.size))
    return ImageManifest(
        Descriptor(media_type, descriptor.digest, descriptor.size), config, tuple(layers)
    )


def resolve_image(
    root: Descriptor,
    fetch: Callable[[Descriptor], bytes],
    platform: Platform,
    where: str,
) -> ImageManifest:
    """Follow `root` (a manifest or index) down to the image for `platform`.

    `fetch` returns a document's bytes, verified against the descriptor's digest.
    """
    current = root
    listed: tuple[Platform, ...] = ()
    for _ in range(MAX_INDEX_DEPTH):
        data = fetch(current)
        doc = parse_json(data, f"{where}: {current.digest}")
        media_type = media_type_of(current.media_type, doc)
        if not is_index(media_type, doc):
            image = parse_image_manifest(
                Descriptor(media_type, current.digest, len(data)), data, where
            )
            return dataclasses.replace(image, platforms=listed)
        entries = index_entries(doc, f"{where}: index {current.digest}")
        listed = tuple(e.platform for e in entries if e.platform is not None)
        current = choose_platform(entries, platform, where)
    raise CorruptImportedImage(f"corrupt imported image {where}: indexes nest too deeply")


@dataclass(frozen=True)
class ImageConfig:
    data: bytes
    digest: Digest
    diff_ids: tuple[Digest, ...]
    platform: Platform | None


def parse_config(data: bytes, digest: Digest, where: str) -> ImageConfig:
    doc = parse_json(data, f"{where}: config {digest}")
    rootfs = doc.get("rootfs") or {}
    raw = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(raw, list):
        raise CorruptImportedImage(
            f"corrupt imported image {where}: config {digest} has no rootfs.diff_ids"
        )
    try:
        diff_ids = tuple(Digest.parse(str(x)) for x in raw)
    except ValueError as e:
        raise CorruptImportedImage(f"corrupt imported image {where}: config: {e}") from None
    platform = None
    if doc.get("os") and doc.get("architecture"):
        platform = Platform(str(doc["os"]), str(doc["architecture"]), str(doc.get("variant", "")))
    return ImageConfig(data, digest, diff_ids, platform)


def check_config(config: ImageConfig, layer_count: int, platform: Platform, where: str) -> None:
    """The config must list one diff_id per layer and be for the spec's platform."""
    if len(config.diff_ids) != layer_count:
        raise CorruptImportedImage(
            f"corrupt imported image {where}: the manifest lists {layer_count} layers, its "
            f"config {len(config.diff_ids)} diff_ids"
        )
    if config.platform is not None and not config.platform.matches(platform):
        raise NoCompatibleImage(
            f"{where}: the image is for {config.platform}; the spec builds for {platform}",
            (str(config.platform),),
        )
