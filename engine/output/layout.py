"""Writes a built image as an OCI image layout directory.

    DIR/oci-layout          {"imageLayoutVersion":"1.0.0"}
    DIR/index.json          one manifest, named by the spec's tag (ref.name annotation)
    DIR/blobs/sha256/<hex>  manifest, config and layers, copied from the cache

Blobs are copied (never hard-linked: a user editing the layout must not corrupt the cache)
under a temporary name and renamed, and index.json is replaced last, so a reader never sees
an index naming a missing or partial blob. Blobs of earlier images no index names are removed.

`vinci build` does better for the blobs it makes: prepare_layout() readies the layout before
the build, and the cache writes each new blob into it as well as into itself, whole or not at
all (BlobStore.mirrored); write_layout() then finds them in place. A build that fails leaves
the old index and its blobs as they were (and removes a layout it had just begun).

The copy is copy_file_range(2): done inside the kernel, and on filesystems with reflinks
(btrfs, XFS) it shares the extents copy-on-write, so it costs no data copy and writing to either
file never changes the other. A rebuild that changes nothing rewrites nothing: blobs already
present are kept, and oci-layout and index.json are replaced only when their bytes differ.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from engine.cache.atomic import write_atomic
from engine.cache.store import BlobStore
from engine.errors import OutputError
from engine.oci import mediatypes
from engine.oci.canonical import canonical_json
from engine.oci.descriptor import Descriptor, Platform
from engine.oci.digest import Digest

LAYOUT_FILE = {"imageLayoutVersion": "1.0.0"}
PARALLEL_COPY_BYTES = 8 << 20  # below this a thread costs more than it saves


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
        _copy_file(store.blob_path(digest), tmp, size)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _copy_all(store: BlobStore, blobs: dict[Digest, int], blob_dir: Path) -> None:
    """Copies the blobs, the large ones side by side: a copy is kernel work that releases the
    GIL, so a multi-layer image (a pull, a tree in several layers) is laid out on every core
    instead of one blob after the other."""
    todo = sorted(blobs.items(), key=lambda item: -item[1])
    big = [item for item in todo if item[1] >= PARALLEL_COPY_BYTES]
    if len(big) < 2:
        for digest, size in todo:
            copy_blob(store, digest, size, blob_dir)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(len(big), os.cpu_count() or 1, 4)) as pool:
        # list(): the first failure is raised here, after the others finish.
        list(pool.map(lambda item: copy_blob(store, item[0], item[1], blob_dir), todo))


def _copy_file(src: Path, dest: Path, size: int) -> None:
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        try:
            left = size
            while left > 0:
                n = os.copy_file_range(fin.fileno(), fout.fileno(), min(left, 1 << 30))
                if n == 0:
                    break
                left -= n
            if left == 0 and not fin.read(1):
                return
        except OSError:
            pass  # no copy_file_range between these two (old kernel, other filesystem)
        fin.seek(0)
        fout.seek(0)
        fout.truncate()
        shutil.copyfileobj(fin, fout, 1 << 20)


def _write_if_changed(path: Path, data: bytes) -> None:
    try:
        with open(path, "rb") as f:
            if f.read(len(data) + 1) == data:
                return
    except FileNotFoundError:
        pass
    write_atomic(path, data)


def _check_target(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not (target / "oci-layout").exists():
        raise OutputError(
            f"{target} is not empty and is not an OCI layout; refusing to write there"
        )


class PreparedLayout:
    """A layout made ready for blobs before its image is built (see the module's text)."""

    def __init__(self, target: Path) -> None:
        _check_target(target)
        self.target = target
        existed = target.exists()
        # Begun here: nothing of the user's is lost by removing it again.
        self.begun = not existed or not any(target.iterdir())
        self.blob_dir = target / "blobs" / "sha256"
        try:
            self.blob_dir.mkdir(parents=True, exist_ok=True)
            _write_if_changed(target / "oci-layout", canonical_json(LAYOUT_FILE))
        except OSError as e:
            raise OutputError(f"cannot write OCI layout {target}: {e.strerror or e}") from None
        self._existed = existed

    def abandon(self) -> None:
        """The build failed: remove the layout if it was begun here. An existing layout keeps
        its index; the new blobs it holds are removed by its next write."""
        if not self.begun:
            return
        if self._existed:
            shutil.rmtree(self.target / "blobs", ignore_errors=True)
            (self.target / "oci-layout").unlink(missing_ok=True)
        else:
            shutil.rmtree(self.target, ignore_errors=True)


def write_layout(
    target: Path,
    store: BlobStore,
    manifest: Descriptor,
    config: Descriptor,
    layers: Iterable[Descriptor],
    tag: str,
    platform: Platform,
) -> None:
    _check_target(target)
    blob_dir = target / "blobs" / "sha256"
    try:
        blob_dir.mkdir(parents=True, exist_ok=True)
        wanted = [manifest, config, *layers]
        _copy_all(store, {d.digest: d.size for d in wanted}, blob_dir)
        _write_if_changed(target / "oci-layout", canonical_json(LAYOUT_FILE))
        _write_if_changed(target / "index.json", layout_index(manifest, tag, platform))
        keep = {d.digest.hex for d in wanted}
        for path in blob_dir.iterdir():
            if path.name not in keep:
                path.unlink()
    except OSError as e:
        raise OutputError(f"cannot write OCI layout {target}: {e.strerror or e}") from None
