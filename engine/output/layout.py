"""Writes a built image into an OCI image layout directory, beside the images already there.

    DIR/oci-layout           {"imageLayoutVersion":"1.0.0"}
    DIR/index.json           every image of the layout, each named by its ref.name annotation
    DIR/blobs/sha256/<hex>   manifests, configs and layers
    DIR/.vinci-build-<id>/   a running build's staging directory (gone when it ends)

The rules (docs/reliability.md, "Outputs"):

- An image is added by its reference name, as skopeo, umoci and crane add one: the entries of
  index.json whose `org.opencontainers.image.ref.name` is the spec's tag are replaced by the new
  image; every other entry, and every blob it reaches, is kept. Garbage is only what no image
  of the final index reaches, and it is removed after index.json is in place.
- The write holds flock(2) on DIR (engine/output/locking.py) from its first step to its last,
  so concurrent builds to one layout take turns; index.json is replaced atomically, and last.
- Until then a build touches nothing of DIR but its own staging directory: the blobs it makes
  are written there as it makes them (BlobStore.mirrored: no copy after the build), and the
  blobs of cache hits are copied there. The write then moves them into blobs/ by rename (a
  new layout's whole blobs/ in one rename). A build that fails or is cancelled removes its
  staging directory, and DIR if it made DIR and DIR is empty again: never anything another
  build made or used. It holds flock on its staging directory while it lives, so the next
  write removes the staging directory of a build that was killed (umoci does the same with
  its `.umoci-*` directories).

Blobs are copied from the cache, never hard-linked (a user editing the layout must not corrupt
the cache), with copy_file_range(2): inside the kernel, and on filesystems with reflinks
(btrfs, XFS) a copy-on-write share of the extents. A rebuild that changes nothing rewrites
nothing: present blobs are kept, and oci-layout and index.json are replaced only when their
bytes differ.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from engine.cache.atomic import write_atomic
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.cpus import available_cpus
from engine.errors import OutputError
from engine.oci import mediatypes
from engine.oci.canonical import canonical_json
from engine.oci.descriptor import Descriptor, Platform
from engine.oci.digest import Digest
from engine.output import locking

LAYOUT_FILE = {"imageLayoutVersion": "1.0.0"}
STAGING_PREFIX = ".vinci-build-"
NEW_PREFIX = ".vinci-new-"  # a staging directory not yet locked
LAYOUT_NAMES = frozenset({"blobs", "index.json"})
# index.json and the manifests and indexes it reaches are read whole: no more than this (the
# bound containerd puts on a manifest).
MAX_DOCUMENT = 4 << 20
PARALLEL_COPY_BYTES = 8 << 20  # below this a thread costs more than it saves
COPY_CHUNK = 64 << 20  # a cancelled build waits for at most one chunk of a copy
HEX = re.compile(r"[0-9a-f]{64}")


def layout_index(manifest: Descriptor, tag: str, platform: Platform) -> bytes:
    """index.json of a layout holding only this image."""
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_INDEX,
            "manifests": [_entry(manifest, tag, platform)],
        }
    )


def _entry(manifest: Descriptor, tag: str, platform: Platform | None) -> dict[str, Any]:
    return Descriptor(
        manifest.media_type,
        manifest.digest,
        manifest.size,
        annotations=((mediatypes.REF_NAME_ANNOTATION, tag),),
        platform=platform,
    ).to_json()


def _ref_name(entry: object) -> object:
    if not isinstance(entry, dict):
        return None
    annotations = entry.get("annotations")
    if not isinstance(annotations, dict):
        return None
    return annotations.get(mediatypes.REF_NAME_ANNOTATION)


def merged_index(old: dict[str, Any] | None, entry: dict[str, Any], tag: str) -> bytes:
    """index.json with `entry` named `tag`: it takes the place of the first entry of that name
    (the others of that name go), or comes last; every other entry and field is kept."""
    if old is None:
        return canonical_json(
            {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [entry]}
        )
    manifests: list[Any] = []
    placed = False
    for m in old["manifests"]:
        if _ref_name(m) != tag:
            manifests.append(m)
        elif not placed:
            manifests.append(entry)
            placed = True
    if not placed:
        manifests.append(entry)
    return canonical_json({**old, "mediaType": mediatypes.OCI_INDEX, "manifests": manifests})


def _read_document(path: Path, what: str) -> Any:
    """A JSON document of the layout, read within MAX_DOCUMENT; FileNotFoundError if absent."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not _regular(st.st_mode):
            raise OutputError(f"{path} is not a regular file, so not {what}")
        data = f.read(MAX_DOCUMENT + 1)
    if len(data) > MAX_DOCUMENT:
        raise OutputError(f"{path} is larger than {MAX_DOCUMENT >> 20} MiB, so not {what}")
    try:
        return json.loads(data)
    except ValueError:
        raise OutputError(f"{path} is not valid JSON, so not {what}") from None


def _regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def read_index(target: Path) -> dict[str, Any] | None:
    """The layout's index.json, None if it has none. One that is not an image index is an
    error: it may be the only record of the user's images, and is never replaced."""
    path = target / "index.json"
    try:
        data = _read_document(path, "an image index")
    except FileNotFoundError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("manifests", []), list):
        raise OutputError(
            f"{path} is not an OCI image index; refusing to replace it (move it away, or "
            "write the image elsewhere)"
        )
    data.setdefault("manifests", [])
    return data


def _children(document: Any) -> Iterator[tuple[Any, bool]]:
    """The descriptors a manifest or index names, each with whether it is itself a manifest
    or index (to be read in turn) or a leaf (config, layer, blob)."""
    if not isinstance(document, dict):
        return
    for m in document.get("manifests") or ():
        yield m, True
    config = document.get("config")
    if config is not None:
        yield config, False
    for key in ("layers", "blobs"):
        for d in document.get(key) or ():
            yield d, False
    subject = document.get("subject")
    if subject is not None:
        yield subject, True


def reachable(index: Any, blob_dir: Path) -> set[str] | None:
    """Hex digests of every sha256 blob the index reaches, through nested indexes; None when
    a manifest or index it names cannot be read (nothing may then be taken for garbage)."""
    seen: set[str] = set()
    todo = list(_children(index))
    while todo:
        d, document = todo.pop()
        digest = d.get("digest") if isinstance(d, dict) else None
        if not isinstance(digest, str) or not digest.startswith("sha256:"):
            continue  # another algorithm's blobs are never collected
        hex_ = digest.removeprefix("sha256:")
        if hex_ in seen:
            continue
        seen.add(hex_)
        if document:
            try:
                todo.extend(_children(_read_document(blob_dir / hex_, "a manifest")))
            except FileNotFoundError:
                continue  # named but absent: nothing of it to keep
            except (OSError, OutputError):
                return None
    return seen


def _has(directory: Path, hex_: str, size: int) -> bool:
    try:
        st = os.lstat(directory / hex_)
    except FileNotFoundError:
        return False
    return _regular(st.st_mode) and st.st_size == size


def _copy_file(src: Path, dest: Path, size: int, cancel: CancelToken | None = None) -> None:
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        try:
            left = size
            while left > 0:
                if cancel is not None:
                    cancel.check()
                n = os.copy_file_range(fin.fileno(), fout.fileno(), min(left, COPY_CHUNK))
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
        while chunk := fin.read(1 << 20):
            if cancel is not None:
                cancel.check()
            fout.write(chunk)


def _write_if_changed(path: Path, data: bytes) -> None:
    try:
        with open(path, "rb") as f:
            if f.read(len(data) + 1) == data:
                return
    except FileNotFoundError:
        pass
    write_atomic(path, data)


def _ours(name: str) -> bool:
    return name.startswith((STAGING_PREFIX, NEW_PREFIX))


def check_target(target: Path) -> None:
    """Refuses a target that is not a directory, or a directory that holds something other
    than a layout (builds' staging directories, and a layout's names without its oci-layout,
    aside)."""
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target} exists and is not a directory")
    if not target.is_dir() or (target / "oci-layout").exists():
        return
    # A layout's own names may stand without oci-layout only where a write was killed.
    if any(not _ours(name) and name not in LAYOUT_NAMES for name in os.listdir(target)):
        raise OutputError(
            f"{target} is not empty and is not an OCI layout; refusing to write there"
        )


class LayoutWriter:
    """One build's write into a layout: ready for blobs before the image is built (`blob_dir`,
    its staging directory), then `commit()`ed, or `abandon()`ed (see the module's text)."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.created = False
        staging = None
        try:
            # Again if a build abandoning the directory we found removes it before our
            # staging directory is in it.
            for _attempt in range(3):
                check_target(target)
                try:
                    target.mkdir(parents=True)
                    self.created = True
                except FileExistsError:
                    pass
                try:
                    staging = Path(tempfile.mkdtemp(prefix=NEW_PREFIX, dir=target))
                    break
                except FileNotFoundError:
                    continue
            if staging is None:
                raise OutputError(f"{target} keeps disappearing; cannot write a layout there")
            # Locked while this build lives: the next write knows a staging directory whose
            # build is gone by its lock being free. Locked before it takes the name a write
            # looks for, so that no write ever finds it free while its build lives.
            self._staging_fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self._closed = False
            self.staging = staging
            locking.try_take(self._staging_fd)
            named = target / (STAGING_PREFIX + staging.name.removeprefix(NEW_PREFIX))
            os.rename(staging, named)
            self.staging = named
            self.blob_dir = self.staging / "blobs" / "sha256"
            self.blob_dir.mkdir(parents=True)
        except OSError as e:
            if staging is not None and hasattr(self, "_staging_fd"):
                self.abandon()
            raise OutputError(f"cannot write OCI layout {target}: {e.strerror or e}") from None

    def commit(
        self,
        store: BlobStore,
        manifest: Descriptor,
        config: Descriptor,
        layers: Iterable[Descriptor],
        tag: str,
        platform: Platform,
        *,
        cancel: CancelToken | None = None,
        waiting: Callable[[], None] | None = None,
    ) -> None:
        """Add the image to the layout under `tag`. `waiting()` is called once if another
        write holds the layout; `cancel` is honoured until the first blob moves in."""
        self.commit_blobs(
            store,
            manifest,
            [config, *layers],
            tag,
            platform,
            cancel=cancel,
            waiting=waiting,
        )

    def commit_blobs(
        self,
        store: BlobStore,
        top: Descriptor,
        blobs: Iterable[Descriptor],
        tag: str,
        platform: Platform | None,
        *,
        cancel: CancelToken | None = None,
        waiting: Callable[[], None] | None = None,
    ) -> None:
        """Add `top` (a manifest, or an image index: `platform` None) to the layout under
        `tag`, with every blob it reaches (`blobs`), as `commit` does."""
        manifest = top
        wanted = {d.digest.hex: d for d in (top, *blobs)}
        try:
            fd = os.open(self.target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                locking.take(fd, cancel, waiting)
                self._commit(store, wanted, _entry(manifest, tag, platform), tag, cancel)
            finally:
                os.close(fd)  # releases the lock
        except OSError as e:
            raise OutputError(f"cannot write OCI layout {self.target}: {e.strerror or e}") from None
        self._close()

    def _commit(
        self,
        store: BlobStore,
        wanted: dict[str, Descriptor],
        entry: dict[str, Any],
        tag: str,
        cancel: CancelToken | None,
    ) -> None:
        check_target(self.target)
        live = self.target / "blobs" / "sha256"
        missing = {
            h: d.size
            for h, d in wanted.items()
            if not _has(live, h, d.size) and not _has(self.blob_dir, h, d.size)
        }
        self._copy_all(store, missing, cancel)
        old = read_index(self.target)  # before anything moves: a bad one stops the write
        index = merged_index(old, entry, tag)
        if cancel is not None:
            cancel.check()  # the last point of return; what follows takes milliseconds
        # oci-layout first: a directory holding it is a layout to any other build's check.
        _write_if_changed(self.target / "oci-layout", canonical_json(LAYOUT_FILE))
        if not (self.target / "blobs").exists():
            os.rename(self.staging / "blobs", self.target / "blobs")
        else:
            live.mkdir(exist_ok=True)
            for h, d in wanted.items():
                if not _has(live, h, d.size):
                    os.replace(self.blob_dir / h, live / h)
        _write_if_changed(self.target / "index.json", index)
        # Garbage only after the new index is in place, and only what it does not reach.
        self._collect(json.loads(index), live)
        self._clean_stale()

    def _copy_all(
        self, store: BlobStore, blobs: dict[str, int], cancel: CancelToken | None
    ) -> None:
        """Copies the blobs from the cache into the staging directory, the large ones side by
        side: a copy is kernel work that releases the GIL."""

        def one(item: tuple[str, int]) -> None:
            hex_, size = item
            tmp = self.staging / f"copy-{hex_}"
            _copy_file(store.blob_path(Digest(hex_)), tmp, size, cancel)
            os.replace(tmp, self.blob_dir / hex_)

        todo = sorted(blobs.items(), key=lambda item: -item[1])
        big = [item for item in todo if item[1] >= PARALLEL_COPY_BYTES]
        if len(big) < 2:
            for item in todo:
                one(item)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(len(big), available_cpus(), 4)) as pool:
            # list(): the first failure is raised here, after the others finish.
            list(pool.map(one, todo))

    def _collect(self, index: Any, live: Path) -> None:
        keep = reachable(index, live)
        if keep is None:
            return
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(live):
                if HEX.fullmatch(name) and name not in keep and _has_regular(live / name):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(live / name)

    def _clean_stale(self) -> None:
        """Removes the staging directories of builds that are gone (their lock is free)."""
        for name in os.listdir(self.target):
            path = self.target / name
            if not name.startswith(STAGING_PREFIX) or path == self.staging:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                if locking.try_take(fd):
                    shutil.rmtree(path, ignore_errors=True)
            finally:
                os.close(fd)

    def _close(self) -> None:
        """Removes the staging directory, then lets go of its lock."""
        if self._closed:
            return
        self._closed = True
        shutil.rmtree(self.staging, ignore_errors=True)
        os.close(self._staging_fd)

    def abandon(self) -> None:
        """The build failed or was cancelled: remove what this build made and nobody else
        uses (its staging directory; the target itself if this build made it and it is
        empty again). Takes no lock, so it never waits: both are this build's alone."""
        self._close()
        if self.created:
            with contextlib.suppress(OSError):
                self.target.rmdir()  # fails, as it should, unless empty


def _has_regular(path: Path) -> bool:
    try:
        return _regular(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False
