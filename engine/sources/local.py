"""A local image resolved to what an import needs: its config and its layers, unread.

Three forms are recognised by their contents, not their names:

- OCI image layout directory: `oci-layout`, `index.json`, `blobs/sha256/…`;
- OCI archive: the same as a tar (also what `vinci build --output oci-archive:` writes);
- docker-archive (`docker save`): `manifest.json` listing `Config` and `Layers` files.

A tar holding both (vinci's and regctl's archives, docker ≥ 25's `docker save`) is read as OCI,
which keeps compressed layers byte for byte. docker-archive layers are usually plain tars: they
enter the image as `application/vnd.oci.image.layer.v1.tar` with digest == diff_id; compressed
ones keep their compressed bytes. Only small JSON is read here; layers are streamed by the
importer, which verifies every digest and diff_id.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import CorruptImportedImage, ImageImportError, NoCompatibleImage
from engine.oci import mediatypes
from engine.oci.descriptor import Descriptor, Platform
from engine.oci.digest import Digest
from engine.oci.manifests import (
    ImageConfig,
    check_config,
    index_entries,
    parse_config,
    parse_json,
    platforms_listed,
    resolve_image,
)
from engine.sources.files import ImageFiles, open_files, read_small

CONTAINERD_NAME = "io.containerd.image.name"
_HEX_NAME = re.compile(r"(?:^|/)(?:sha256[:/])?([a-f0-9]{64})(?:\.json)?$")


@dataclass(frozen=True)
class LocalLayer:
    """One layer to import. `digest`/`media_type` None: learned when the bytes are read."""

    member: str  # file in the layout or archive
    size: int
    diff_id: Digest
    digest: Digest | None
    media_type: str | None
    compression: str  # gzip | zstd | none | detect


@dataclass(frozen=True)
class LocalImage:
    files: ImageFiles
    kind: str  # "oci" | "docker"
    identity: str  # what the image's content is pinned by, for the cache key
    manifest: Descriptor | None
    config: ImageConfig
    layers: tuple[LocalLayer, ...]
    platforms: tuple[Platform, ...] = ()  # of the index it was chosen from

    def close(self) -> None:
        self.files.close()


def blob_name(digest: Digest) -> str:
    return f"blobs/sha256/{digest.hex}"


def open_local_image(path: Path, where: str, tag: str, platform: Platform) -> LocalImage:
    files = open_files(path, where)
    try:
        if files.exists("oci-layout") and files.exists("index.json"):
            return _read_oci(files, where, tag, platform)
        if files.exists("manifest.json"):
            return _read_docker(files, where, tag, platform)
        raise ImageImportError(
            f"{where}: not an OCI image layout, OCI archive or docker-archive (no oci-layout + "
            "index.json, no manifest.json)"
        )
    except BaseException:
        files.close()
        raise


def _verified(files: ImageFiles, d: Descriptor, where: str) -> bytes:
    data = read_small(files, blob_name(d.digest))
    got = Digest(hashlib.sha256(data).hexdigest())
    if got != d.digest:
        raise CorruptImportedImage(
            f"corrupt imported image {where}: blob {d.digest} does not match its digest (its "
            f"bytes hash to {got})"
        )
    if len(data) != d.size:
        raise CorruptImportedImage(
            f"corrupt imported image {where}: blob {d.digest} is {len(data)} bytes, its "
            f"descriptor says {d.size}"
        )
    return data


def _ref_names(d: Descriptor) -> list[str]:
    annotations = dict(d.annotations)
    return [
        n
        for n in (annotations.get(mediatypes.REF_NAME_ANNOTATION), annotations.get(CONTAINERD_NAME))
        if n
    ]


def _tag_matches(name: str, tag: str) -> bool:
    return name == tag or name.endswith(f":{tag}")


def _pick_entry(entries: list[Descriptor], tag: str, platform: Platform, where: str) -> Descriptor:
    if not entries:
        raise ImageImportError(f"{where}: index.json lists no images")
    tags = sorted({n for e in entries for n in _ref_names(e)})
    if tag:
        named = [e for e in entries if any(_tag_matches(n, tag) for n in _ref_names(e))]
        if not named:
            holds = ", ".join(tags) if tags else "no tagged images"
            raise ImageImportError(f"{where}: no image tagged {tag!r}; it holds {holds}")
        entries = named
    if len({e.digest for e in entries}) == 1:
        return entries[0]
    # Several images: a layout made for several platforms names them in index.json itself.
    for_platform = [e for e in entries if e.platform is not None and e.platform.matches(platform)]
    if len({e.digest for e in for_platform}) == 1:
        return for_platform[0]
    if not for_platform and all(e.platform is not None for e in entries):
        present = tuple(platforms_listed(entries))
        raise NoCompatibleImage(
            f"{where}: no image for {platform}; it holds {', '.join(present)}", present
        )
    holds = ", ".join(tags) if tags else f"{len(entries)} untagged images"
    raise ImageImportError(f"{where}: holds several images ({holds}); choose one with `tag:`")


def _read_oci(files: ImageFiles, where: str, tag: str, platform: Platform) -> LocalImage:
    layout = parse_json(read_small(files, "oci-layout"), f"{where}: oci-layout")
    if "imageLayoutVersion" not in layout:
        raise ImageImportError(f"{where}: oci-layout has no imageLayoutVersion")
    index = parse_json(read_small(files, "index.json"), f"{where}: index.json")
    root = _pick_entry(index_entries(index, f"{where}: index.json"), tag, platform, where)
    image = resolve_image(root, lambda d: _verified(files, d, where), platform, where)
    config = parse_config(_verified(files, image.config, where), image.config.digest, where)
    check_config(config, len(image.layers), platform, where)
    layers = tuple(
        LocalLayer(
            blob_name(d.digest),
            d.size,
            diff_id,
            d.digest,
            d.media_type,
            mediatypes.layer_compression(d.media_type),
        )
        for d, diff_id in zip(image.layers, config.diff_ids, strict=True)
    )
    # Layer files are looked for only when read: a cached import needs none of them.
    return LocalImage(
        files,
        "oci",
        f"oci:{image.descriptor.digest}",
        image.descriptor,
        config,
        layers,
        image.platforms,
    )


def _read_docker(files: ImageFiles, where: str, tag: str, platform: Platform) -> LocalImage:
    try:
        entries = json.loads(read_small(files, "manifest.json"))
    except ValueError:
        raise CorruptImportedImage(
            f"corrupt imported image {where}: manifest.json is not valid JSON"
        ) from None
    if not isinstance(entries, list) or not entries:
        raise CorruptImportedImage(f"corrupt imported image {where}: manifest.json lists no images")
    tags = sorted({str(t) for e in entries if isinstance(e, dict) for t in e.get("RepoTags") or []})
    if tag:
        entries = [
            e
            for e in entries
            if isinstance(e, dict)
            and any(_tag_matches(str(t), tag) for t in e.get("RepoTags") or [])
        ]
        if not entries:
            holds = ", ".join(tags) if tags else "no tagged images"
            raise ImageImportError(f"{where}: no image tagged {tag!r}; it holds {holds}")
    if len(entries) > 1:
        holds = ", ".join(tags) if tags else f"{len(entries)} untagged images"
        raise ImageImportError(f"{where}: holds several images ({holds}); choose one with `tag:`")
    entry = entries[0]
    if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
        raise CorruptImportedImage(f"corrupt imported image {where}: manifest.json has no Config")
    config_name = str(entry["Config"])
    data = read_small(files, config_name)
    digest = Digest(hashlib.sha256(data).hexdigest())
    named = _HEX_NAME.search(config_name)
    if named and named.group(1) != digest.hex:
        raise CorruptImportedImage(
            f"corrupt imported image {where}: config {config_name} does not match its digest "
            f"(its bytes hash to {digest})"
        )
    config = parse_config(data, digest, where)
    names = [str(n) for n in entry.get("Layers") or []]
    check_config(config, len(names), platform, where)
    layers = []
    for name, diff_id in zip(names, config.diff_ids, strict=True):
        if not files.exists(name):
            raise CorruptImportedImage(f"corrupt imported image {where}: layer {name} is missing")
        hex_name = re.search(r"(?:^|/)blobs/sha256/([a-f0-9]{64})$", name)
        layers.append(
            LocalLayer(
                name,
                files.size(name),
                diff_id,
                Digest(hex_name.group(1)) if hex_name else None,
                None,
                "detect",
            )
        )
    identity = "docker:" + json.dumps(
        [str(digest), [(layer.member, layer.size) for layer in layers]], separators=(",", ":")
    )
    return LocalImage(files, "docker", identity, None, config, tuple(layers))
