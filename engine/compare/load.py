"""Opens either side of a diff: a spec (built on the fly), an OCI layout, an archive, or a
registry reference, as one LoadedImage: its manifest and config documents, its layers, and a
way to stream each layer's blob.

    spec:PATH | PATH.yaml | DIR with vinci.yaml   built through the cache (an unchanged spec
                                                  costs only planning)
    oci:DIR[:TAG] | DIR with oci-layout           read in place
    oci-archive:FILE | docker-archive:FILE | FILE read in place (members streamed)
    registry REF (docker.io/library/busybox:1…)   manifest and config fetched; a layer is
                                                  fetched into the cache only when its files
                                                  are compared

Only small JSON is read when an image is opened; layers are streamed by the comparison.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from engine.cache.store import BlobStore
from engine.compare.model import ImageRef
from engine.errors import ImageImportError, VinciError
from engine.events import CancelToken
from engine.oci import mediatypes
from engine.oci.descriptor import Descriptor, Platform
from engine.oci.digest import Digest
from engine.tar.compression import SNIFF_BYTES, sniff_compression

if TYPE_CHECKING:
    from engine.builder.result import BuildResult
    from engine.spec.model import Spec

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
class LoadedImage:
    ref: ImageRef
    manifest: dict[str, Any] | None  # None: a docker-archive has no manifest
    config: dict[str, Any]
    layers: tuple[ImageLayer, ...]
    opener: Callable[[ImageLayer], BinaryIO]
    closer: Callable[[], None] = field(default=lambda: None)

    def open_layer(self, layer: ImageLayer) -> BinaryIO:
        return self.opener(layer)

    def close(self) -> None:
        self.closer()

    def __enter__(self) -> LoadedImage:
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
    # What looks like a path is not looked up on Docker Hub: a typo must not go to the network.
    if text.startswith((".", os.sep, "~")) or Path(path).suffix in (*SPEC_SUFFIXES, ".oci", ".tar"):
        raise VinciError(f"{text}: no such file or directory")
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


# -- a spec, built ---------------------------------------------------------------------------


def load_spec_image(
    path: str,
    store: BlobStore,
    build: Callable[[Spec], BuildResult],
) -> LoadedImage:
    """Build the spec at `path` with `build(spec) -> BuildResult` and open the result."""
    from engine.spec import load_spec
    from engine.spec.locate import find_spec

    return load_result(build(load_spec(find_spec(path))), store)


def load_result(result: BuildResult, store: BlobStore) -> LoadedImage:
    """A BuildResult whose blobs are in `store`, opened for diffing: the workbench diffs the
    previous build against the new one this way, with no rebuild and no copy."""
    manifest = _json_object(store.read_blob(result.manifest.digest), "manifest")
    config = _json_object(store.read_blob(result.config.digest), "config")
    descriptors: list[Descriptor] = []
    codecs: list[str] = []
    for r in result.layers:
        for d in r.record.descriptors:
            descriptors.append(d)
            codecs.append("" if r.record.codec == "import" else r.record.codec)
    ref = ImageRef(
        result.spec.display_path, "spec", str(result.manifest.digest), str(result.config.digest)
    )
    layers = _layers_from(manifest, descriptors, config, codecs)
    return LoadedImage(ref, manifest, config, layers, lambda layer: _open_store(store, layer))


def _open_store(store: BlobStore, layer: ImageLayer) -> BinaryIO:
    return store.open_blob(layer.descriptor.digest)


# -- a layout or an archive ------------------------------------------------------------------


def load_local_image(target: Target, platform: Platform) -> LoadedImage:
    from engine.sources.files import bounded, read_small
    from engine.sources.local import blob_name, open_local_image

    path = Path(target.value)
    where = target.value + (f":{target.tag}" if target.tag else "")
    image = open_local_image(path, where, target.tag, platform)
    try:
        files = image.files
        config = _json_object(image.config.data, f"{where}: config")
        manifest: dict[str, Any] | None = None
        manifest_digest = ""
        descriptors: list[Descriptor] = []
        members: dict[int, str] = {}
        if image.manifest is not None:
            manifest_digest = str(image.manifest.digest)
            manifest_bytes = read_small(files, blob_name(image.manifest.digest))
            manifest = _json_object(manifest_bytes, f"{where}: manifest")
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
                descriptors.append(Descriptor(_MEDIA_FOR[kind], digest, size))
                members[i] = layer.member
        kind = "oci" if path.is_dir() else ("oci-archive" if image.kind == "oci" else "docker")
        if kind == "docker":
            kind = "docker-archive"
        ref = ImageRef(where, kind, manifest_digest, str(image.config.digest))
        layers = _layers_from(manifest, descriptors, config)
    except BaseException:
        image.close()
        raise
    return LoadedImage(
        ref,
        manifest,
        config,
        layers,
        # A layer is never read past the size its descriptor declares.
        lambda layer: bounded(
            files.open(members[layer.position]), layer.descriptor.size, f"{where} layer"
        ),
        image.close,
    )


# -- a registry reference ----------------------------------------------------------------------


def load_registry_image(
    text: str, platform: Platform, store: BlobStore, cancel: CancelToken | None = None
) -> LoadedImage:
    """Fetch manifest and config now; each layer into the cache when it is first opened."""
    from engine.oci.reference import parse_reference
    from engine.registry.client import RegistryClient
    from engine.sources.ingest import Ingest
    from engine.sources.manifests import resolve_image

    try:
        ref = parse_reference(text)
    except ValueError as e:
        raise VinciError(
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

    def open_layer(layer: ImageLayer) -> BinaryIO:
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
    return LoadedImage(image_ref, manifest, config, layers, open_layer, client.close)


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
    from engine.sources.ingest import Ingest

    sink = Ingest(store, what)
    try:
        client.fetch_blob(repository, d.digest, d.size, sink, cancel=cancel)
        sink.commit(d.digest, d.size)  # checks the digest before anything is stored
    finally:
        sink.discard()
    return store.read_blob(d.digest)


def open_image(
    text: str,
    *,
    store: BlobStore,
    build: Callable[[Spec], BuildResult],
    platform: Platform,
    cancel: CancelToken | None = None,
) -> LoadedImage:
    """Open what `text` names (see the module docstring); `build` builds a spec."""
    target = parse_target(text)
    if target.kind == "spec":
        return load_spec_image(target.value, store, build)
    if target.kind in ("layout", "archive"):
        return load_local_image(target, platform)
    return load_registry_image(target.value, platform, store, cancel)
