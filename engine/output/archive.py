"""Writes a built image as ONE tarball that is both an OCI archive and a docker-archive.

    oci-layout                 {"imageLayoutVersion":"1.0.0"}           OCI image layout...
    index.json                 the manifest, named by the spec's tag
    manifest.json              [{"Config","RepoTags","Layers"}]          ...and docker save's index
    blobs/sha256/<hex>         config, layers, manifest (shared by both)

`--output oci-archive:FILE` and `--output docker-archive:FILE` write the same bytes, as
`regctl image export` and docker ≥ 25's `docker save` do: `skopeo`/`podman` read it as either
transport, `docker load` reads manifest.json. Layers stay as built (compressed); docker and
podman decompress layer files on load, so nothing is re-encoded and digests survive.

Deterministic: entries in a fixed order, ustar headers with mtime 0, uid/gid 0, fixed modes
(engine/tar/format.py), so the same image gives the same archive bytes. Written to a temporary
file beside the target and renamed into place: a reader never sees half an archive.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from engine.cache.store import BlobStore
from engine.errors import OutputError
from engine.oci import mediatypes
from engine.oci.canonical import canonical_json
from engine.oci.descriptor import Descriptor, Platform
from engine.oci.reference import ImageReference
from engine.output.layout import LAYOUT_FILE
from engine.tar.format import DIRECTORY, END, REGULAR, TarHeader, encode_header, padding

COPY_CHUNK = 1 << 20
CONTAINERD_NAME = "io.containerd.image.name"


def docker_manifest(
    config: Descriptor, layers: Sequence[Descriptor], repo_tags: Sequence[str]
) -> bytes:
    entry = {
        "Config": f"blobs/sha256/{config.digest.hex}",
        "RepoTags": list(repo_tags),
        "Layers": [f"blobs/sha256/{d.digest.hex}" for d in layers],
    }
    return canonical_json([entry])


def archive_index(
    manifest: Descriptor, tag: str, platform: Platform, image: ImageReference | None
) -> bytes:
    """index.json: the manifest named by its tag (what skopeo's and umoci's `FILE:TAG` look up)
    and, when the spec names an image, by its full name in the annotation containerd and
    docker ≥ 25 write and `podman load` names the loaded image by."""
    annotations = [(mediatypes.REF_NAME_ANNOTATION, tag)]
    if image is not None:
        annotations.append((CONTAINERD_NAME, f"{image.name}:{tag}"))
    entry = Descriptor(
        manifest.media_type,
        manifest.digest,
        manifest.size,
        annotations=tuple(sorted(annotations)),
        platform=platform,
    )
    return canonical_json(
        {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [entry.to_json()]}
    )


def repo_tags(image: ImageReference | None, tag: str) -> list[str]:
    """`docker load` names the image by these; none when the spec names no image."""
    if image is None:
        return []
    return [f"{image.name}:{tag}"]


def _file(out: BinaryIO, name: str, data: bytes) -> None:
    out.write(encode_header(TarHeader(name=name, type=REGULAR, mode=0o644, size=len(data))))
    out.write(data)
    out.write(padding(len(data)))


def _blob(out: BinaryIO, store: BlobStore, d: Descriptor) -> None:
    name = f"blobs/sha256/{d.digest.hex}"
    with store.open_blob(d.digest) as f:
        size = os.fstat(f.fileno()).st_size
        if size != d.size:
            raise OutputError(
                f"cached blob {d.digest} is {size} bytes, expected {d.size}; run "
                "`vinci cache verify`"
            )
        out.write(encode_header(TarHeader(name=name, type=REGULAR, mode=0o644, size=size)))
        left = size
        while left:
            chunk = f.read(min(COPY_CHUNK, left))
            if not chunk:
                raise OutputError(f"cached blob {d.digest} shrank while being copied")
            out.write(chunk)
            left -= len(chunk)
        out.write(padding(size))


def write_archive(
    target: Path,
    store: BlobStore,
    manifest: Descriptor,
    config: Descriptor,
    layers: Sequence[Descriptor],
    tag: str,
    platform: Platform,
    image: ImageReference | None,
) -> None:
    if target.is_dir():
        raise OutputError(f"{target} is a directory; an archive output needs a file path")
    tmp = target.parent / f".{target.name}.tmp-{os.urandom(6).hex()}"
    # Each blob once (an image may list the same layer twice), config first, manifest last.
    blobs = list({d.digest: d for d in (config, *layers, manifest)}.values())
    try:
        with open(tmp, "xb") as out:
            _file(out, "oci-layout", canonical_json(LAYOUT_FILE))
            _file(out, "index.json", archive_index(manifest, tag, platform, image))
            _file(out, "manifest.json", docker_manifest(config, layers, repo_tags(image, tag)))
            for directory in ("blobs/", "blobs/sha256/"):
                out.write(encode_header(TarHeader(name=directory, type=DIRECTORY, mode=0o755)))
            for d in blobs:
                _blob(out, store, d)
            out.write(END)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except OSError as e:
        raise OutputError(f"cannot write archive {target}: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
