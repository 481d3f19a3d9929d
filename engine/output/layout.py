"""Writes a built image as an OCI image layout directory.

    DIR/oci-layout          {"imageLayoutVersion":"1.0.0"}
    DIR/index.json          one manifest, named by the spec's tag (ref.name annotation)
    DIR/blobs/sha256/<hex>  manifest, config and layers, copied from the cache

Blobs are copied (never hard-linked: a user editing the layout must not corrupt the cache)
under a temporary name and renamed, and index.json is replaced last, so a reader never sees
an index naming a missing or partial blob. Blobs of earlier images no index names are removed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from engine import mediatypes
from engine.cache.atomic import write_atomic
from engine.cache.store import BlobStore
from engine.canonical import canonical_json
from engine.descriptor import Descriptor, Platform
from engine.digest import Digest
from engine.errors import OutputError

LAYOUT_FILE = {"imageLayoutVersion": "1.0.0"}


def layout_index(manifest: Descriptor, tag: str, platform: Platform) -> bytes:
    entry = Descriptor(
        manifest.media_type,
        manifest.digest,
        manifest.size,
        annotations=((mediatypes.REF_NAME_ANNOTATION, tag),),
        platform=platform,
    )
    return canonical_json(
        {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [entry.to_json()]}
    )


def copy_blob(store: BlobStore, digest: Digest, size: int, blob_dir: Path) -> None:
    dest = blob_dir / digest.hex
    try:
        if dest.stat().st_size == size:
            return
    except FileNotFoundError:
        pass
    tmp = blob_dir / f".tmp-{digest.hex}-{os.getpid()}"
    try:
        shutil.copyfile(store.blob_path(digest), tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_layout(
    target: Path,
    store: BlobStore,
    manifest: Descriptor,
    config: Descriptor,
    layers: Iterable[Descriptor],
    tag: str,
    platform: Platform,
) -> None:
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not (target / "oci-layout").exists():
        raise OutputError(
            f"{target} is not empty and is not an OCI layout; refusing to write there"
        )
    blob_dir = target / "blobs" / "sha256"
    try:
        blob_dir.mkdir(parents=True, exist_ok=True)
        wanted = [manifest, config, *layers]
        for d in wanted:
            copy_blob(store, d.digest, d.size, blob_dir)
        write_atomic(target / "oci-layout", canonical_json(LAYOUT_FILE))
        write_atomic(target / "index.json", layout_index(manifest, tag, platform))
        keep = {d.digest.hex for d in wanted}
        for path in blob_dir.iterdir():
            if path.name not in keep:
                path.unlink()
    except OSError as e:
        raise OutputError(f"cannot write OCI layout {target}: {e.strerror or e}") from None
