"""Opens an existing image, wherever it lives, as one OpenedImage (engine.oci.image.Image):

    oci:DIR[:TAG] | DIR with oci-layout           read in place
    oci-archive:FILE | docker-archive:FILE | FILE read in place (members streamed)
    registry REF (docker.io/library/busybox:1…)   manifest and config fetched; a layer is
                                                  fetched into the cache only when opened

Only small JSON is read when an image is opened; layers are streamed by whoever reads them.
A spec is a recipe, not an image: engine.compare opens one by building it first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.errors import ImageImportError, UsageError
from engine.oci import mediatypes
from engine.oci.descriptor import Descriptor, Platform
from engine.oci.digest import Digest
from engine.oci.image import ImageRef, Layer
from engine.sources.files import file_kind
from engine.tar.compression import SNIFF_BYTES, sniff_compression

SPEC_SUFFIXES = (".yaml", ".yml")
PREFIXES = ("spec", "oci", "oci-archive", "docker-archive", "docker", "registry")
_MEDIA_FOR = {
    "gzip": mediatypes.OCI_LAYER_GZIP,
    "zstd": mediatypes.OCI_LAYER_ZSTD,
    "none": mediatypes.OCI_LAYER,
}


@dataclass(frozen=True)
class ImageLayer:
    """One manifest entry: its descriptor, diff_id, history line and (for a spec build) the
    identity of the codec that compressed it."""

    position: int
    descriptor: Descriptor
    diff_id: Digest
    created_by: str = ""
    codec: str = ""


@dataclass
class OpenedImage:
    """An image opened from wherever it lives (implements engine.oci.image.Image): the
    manifest and config as raw bytes and parsed, its layers, and how to stream each blob."""

    ref: ImageRef
    raw_manifest: bytes | None  # None: a docker-archive has no manifest
    raw_config: bytes
    manifest: dict[str, Any] | None
    config: dict[str, Any]
    layers: tuple[ImageLayer, ...]
    opener: Callable[[Layer], BinaryIO]
    closer: Callable[[], None] = field(default=lambda: None)
    # The platforms of the image index it was chosen from; none when it was not in one.
    platforms: tuple[Platform, ...] = ()

    def open_layer(self, layer: Layer) -> BinaryIO:
        return self.opener(layer)

    def close(self) -> None:
        self.closer()

    def __enter__(self) -> OpenedImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Target:
    """What a command-line argument names: a kind and a path or reference (and a tag)."""

    kind: str  # spec | layout | archive | registry
    value: str
    tag: str = ""


def parse_target(text: str) -> Target:
    """Decide what `text` names, by an explicit prefix or by what exists on disk."""
    prefix, sep, rest = text.partition(":")
    if sep and prefix in PREFIXES and rest:
        if prefix == "spec":
            return Target("spec", rest)
        if prefix in ("docker", "registry"):
            return Target("registry", rest.removeprefix("//"))
        kind = "layout" if prefix == "oci" else "archive"
        path, tag = _path_and_tag(rest)
        return Target(kind, path, tag)
    path, tag = _path_and_tag(text)
    p = Path(path)
    if p.is_dir():
        if (p / "oci-layout").is_file():
            return Target("layout", path, tag)
        return Target("spec", path)
    if p.is_file():
        if p.suffix in SPEC_SUFFIXES:
            return Target("spec", path)
        return Target("archive", path, tag)
    if p.exists():
        # A FIFO or a device: neither an image nor a spec, and never a registry name.
        raise UsageError(f"{path} is {file_kind(p.stat().st_mode)}, not a regular file")
    # What looks like a path is not looked up on Docker Hub: a typo must not go to the network.
    if text.startswith((".", os.sep, "~")) or Path(path).suffix in (*SPEC_SUFFIXES, ".oci", ".tar"):
        raise UsageError(f"{text}: no such file or directory")
    return Target("registry", text)


def _path_and_tag(text: str) -> tuple[str, str]:
    """`DIR:TAG` as skopeo writes it, unless the whole of `text` exists as a path."""
    if os.path.exists(text) or ":" not in text:
        return text, ""
    path, _, tag = text.rpartition(":")
    if os.path.exists(path) and "/" not in tag:
        return path, tag
    return text, ""


def _history(config: dict[str, Any]) -> list[str]:
    """created_by of each history entry that made a layer, in layer order."""
    out = []
    for h in config.get("history") or []:
        if isinstance(h, dict) and not h.get("empty_layer"):
            out.append(str(h.get("created_by", "")))
    return out


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as e:
        raise ImageImportError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ImageImportError(f"{what} is not a JSON object")
    return value


def _layers_from(
    manifest: dict[str, Any] | None,
    descriptors: list[Descriptor],
    config: dict[str, Any],
    codecs: list[str] | None = None,
) -> tuple[ImageLayer, ...]:
    raw = (config.get("rootfs") or {}).get("diff_ids") or []
    diff_ids = [Digest.parse(str(x)) for x in raw]
    if len(diff_ids) != len(descriptors):
        raise ImageImportError(
            f"the manifest lists {len(descriptors)} layers, the config {len(diff_ids)} diff_ids"
        )
    history = _history(config)
    return tuple(
        ImageLayer(
            i,
            d,
            diff_ids[i],
            history[i] if i < len(history) else "",
            codecs[i] if codecs else "",
        )
        for i, d in enumerate(descriptors)
    )


# -- a layout or an archive ------------------------------------------------------------------


def open_local(target: Target, platform: Platform) -> OpenedImage:
    from engine.sources.files import bounded, read_small
    from engine.sources.local import blob_name, open_local_image

    path = Path(target.value)
    where = target.value + (f":{target.tag}" if target.tag else "")
    image = open_local_image(path, where, target.tag, platform)
    try:
        files = image.files
        config = _json_object(image.config.data, f"{where}: config")
        manifest: dict[str, Any] | None = None
        raw_manifest: bytes | None = None
        manifest_digest = ""
        descriptors: list[Descriptor] = []
        members: dict[int, str] = {}
        if image.manifest is not None:
            manifest_digest = str(image.manifest.digest)
            raw_manifest = read_small(files, blob_name(image.manifest.digest))
            manifest = _json_object(raw_manifest, f"{where}: manifest")
            # The manifest's own descriptors: media types as written, not import's OCI names.
            for i, raw in enumerate(manifest.get("layers") or []):
                descriptors.append(Descriptor.from_json(raw))
                members[i] = image.layers[i].member
        else:
            for i, layer in enumerate(image.layers):
                # docker-archive layers carry no digest or media type: learn both from the bytes.
                with files.open(layer.member) as f:
                    head = f.read(SNIFF_BYTES)
                    f.seek(0)
                    digest, size = Digest.of_stream(f)
                kind = sniff_compression(head)
                # An xz blob is no layer any runtime reads; it is described as it always was.
                media = _MEDIA_FOR.get(kind, mediatypes.OCI_LAYER)
                descriptors.append(Descriptor(media, digest, size))
                members[i] = layer.member
        kind = "oci" if path.is_dir() else ("oci-archive" if image.kind == "oci" else "docker")
        if kind == "docker":
            kind = "docker-archive"
        ref = ImageRef(where, kind, manifest_digest, str(image.config.digest))
        layers = _layers_from(manifest, descriptors, config)
    except BaseException:
        image.close()
        raise
    return OpenedImage(
        ref,
        raw_manifest,
        image.config.data,
        manifest,
        config,
        layers,
        # A layer is never read past the size its descriptor declares.
        lambda layer: bounded(
            files.open(members[layer.position]), layer.descriptor.size, f"{where} layer"
        ),
        image.close,
        image.platforms,
    )


# -- a registry reference ----------------------------------------------------------------------


def open_remote(
    text: str, platform: Platform, store: BlobStore, cancel: CancelToken | None = None
) -> OpenedImage:
    """Fetch manifest and config now; each layer into the cache when it is first opened."""
    from engine.cache.ingest import Ingest
    from engine.oci.manifests import resolve_image
    from engine.oci.reference import parse_reference
    from engine.registry.client import RegistryClient

    try:
        ref = parse_reference(text)
    except ValueError as e:
        raise UsageError(
            f"{text}: not a spec, OCI layout, archive or image reference ({e})"
        ) from None
    client = RegistryClient(ref.registry)
    try:
        repository = ref.repository
        top = client.get_manifest(repository, ref.reference, cancel)

        def fetch(d: Descriptor) -> bytes:
            if d.digest == top.digest:
                return top.data
            return client.get_manifest(repository, str(d.digest), cancel).data

        image = resolve_image(top.descriptor, fetch, platform, str(ref))
        manifest_bytes = fetch(image.descriptor)
        manifest = _json_object(manifest_bytes, f"{ref}: manifest")
        config_bytes = _fetch_small(client, repository, image.config, store, str(ref), cancel)
        config = _json_object(config_bytes, f"{ref}: config")
        descriptors = [Descriptor.from_json(x) for x in manifest.get("layers") or []]
        layers = _layers_from(manifest, descriptors, config)
    except BaseException:
        client.close()
        raise

    def open_layer(layer: Layer) -> BinaryIO:
        d = layer.descriptor
        if not store.has_blob(d.digest, d.size):
            sink = Ingest(store, str(ref), mediatypes.layer_compression(d.media_type))
            try:
                client.fetch_blob(repository, d.digest, d.size, sink, cancel=cancel)
                sink.commit(d.digest, d.size, layer.diff_id)
            finally:
                sink.discard()
        return store.open_blob(d.digest)

    image_ref = ImageRef(
        str(ref), "registry", str(image.descriptor.digest), str(image.config.digest)
    )
    return OpenedImage(
        image_ref,
        manifest_bytes,
        config_bytes,
        manifest,
        config,
        layers,
        open_layer,
        client.close,
        image.platforms,
    )


def _fetch_small(
    client: Any,
    repository: str,
    d: Descriptor,
    store: BlobStore,
    what: str,
    cancel: CancelToken | None,
) -> bytes:
    if store.has_blob(d.digest, d.size):
        return store.read_blob(d.digest)
    from engine.cache.ingest import Ingest

    sink = Ingest(store, what)
    try:
        client.fetch_blob(repository, d.digest, d.size, sink, cancel=cancel)
        sink.commit(d.digest, d.size)  # checks the digest before anything is stored
    finally:
        sink.discard()
    return store.read_blob(d.digest)


def image_in_store(
    store: BlobStore,
    manifest: Descriptor,
    config: Descriptor,
    layers: list[tuple[Descriptor, str]],
    where: str,
) -> OpenedImage:
    """An image whose blobs are all in `store` (a build's result): opened with no copy.
    `layers` pairs each layer's descriptor with the codec that made it ("" if unknown)."""
    raw_manifest = store.read_blob(manifest.digest)
    raw_config = store.read_blob(config.digest)
    parsed_manifest = _json_object(raw_manifest, "manifest")
    parsed_config = _json_object(raw_config, "config")
    ref = ImageRef(where, "spec", str(manifest.digest), str(config.digest))
    opened = _layers_from(
        parsed_manifest, [d for d, _ in layers], parsed_config, [c for _, c in layers]
    )
    return OpenedImage(
        ref,
        raw_manifest,
        raw_config,
        parsed_manifest,
        parsed_config,
        opened,
        lambda layer: store.open_blob(layer.descriptor.digest),
    )


def image_platforms(
    text: str, *, store: BlobStore | None = None, cancel: CancelToken | None = None
) -> tuple[Platform, ...]:
    """The platforms the image `text` names holds: those its index lists, or its own."""
    from engine.errors import NoCompatibleImage

    try:
        with open_image(text, store=store, cancel=cancel) as image:
            if image.platforms:
                return image.platforms
            config = image.config
            return (
                Platform(
                    str(config.get("os") or "linux"),
                    str(config.get("architecture") or "amd64"),
                    str(config.get("variant") or ""),
                ),
            )
    except NoCompatibleImage as e:
        if not e.available:
            raise
        return tuple(Platform.parse(p) for p in e.available)


def open_image(
    text: str,
    *,
    platform: Platform | None = None,
    store: BlobStore | None = None,
    cancel: CancelToken | None = None,
) -> OpenedImage:
    """Open the image `text` names: an OCI layout (`oci:DIR[:TAG]` or a directory holding
    oci-layout), an archive (`oci-archive:FILE`, `docker-archive:FILE`, or a file), or a
    registry reference. From an index, the image for `platform` (default linux/amd64). A
    registry image's layers are fetched into `store` (default: the user's cache) when first
    opened. A spec is not an image: build it (engine.build) and open the result."""
    target = parse_target(text)
    platform = platform or Platform()
    if target.kind == "spec":
        raise UsageError(f"{text} is a spec, not an image: build it first")
    if target.kind in ("layout", "archive"):
        return open_local(target, platform)
    return open_remote(target.value, platform, store or BlobStore(), cancel)
