"""Writes an image whose blobs are in the cache to an output target: an OCI layout directory
(the image added by its tag, under the layout's lock) or one tarball that is both an OCI
archive and a docker-archive (a file replaced whole, or a stream written through)."""

from __future__ import annotations

from collections.abc import Callable

from engine.cache.image import StoredImage, StoredIndex
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.errors import OutputError
from engine.oci.descriptor import Platform
from engine.oci.reference import ImageReference
from engine.output import OutputTarget
from engine.output.archive import write_archive, write_index_archive
from engine.output.layout import LayoutWriter


def write_image(
    target: OutputTarget,
    image: StoredImage,
    store: BlobStore,
    *,
    tag: str,
    platform: Platform,
    reference: ImageReference | None = None,
    cancel: CancelToken | None = None,
    waiting: Callable[[], None] | None = None,
    layout: LayoutWriter | None = None,
) -> None:
    """Write `image` (its blobs in `store`) to `target`, named by `tag` (the layout's
    org.opencontainers.image.ref.name; with `reference`, the archive's repository tag), into
    `layout` if the build readied one. `cancel` is honoured until the output begins to
    change; `waiting` is called once if another writer holds the output."""
    if target.kind == "oci":
        writer = layout if layout is not None else LayoutWriter(target.path)
        try:
            writer.commit(
                store,
                image.manifest,
                image.config,
                list(image.layers),
                tag,
                platform,
                cancel=cancel,
                waiting=waiting,
            )
        except BaseException:
            writer.abandon()
            raise
    elif target.kind in ("oci-archive", "docker-archive"):
        # One tarball serves both: an OCI archive that also carries docker's manifest.json.
        write_archive(
            target.path,
            store,
            image.manifest,
            image.config,
            list(image.layers),
            tag,
            platform,
            reference,
            cancel=cancel,
            waiting=waiting,
        )
    else:
        raise OutputError(f"{target.kind} output is not available")


def write_index(
    target: OutputTarget,
    index: StoredIndex,
    store: BlobStore,
    *,
    tag: str,
    reference: ImageReference | None = None,
    cancel: CancelToken | None = None,
    waiting: Callable[[], None] | None = None,
    layout: LayoutWriter | None = None,
) -> None:
    """Write an image index and its images to `target` as write_image does one image: an
    OCI layout names the index by `tag`; an OCI archive holds it. A docker-archive cannot."""
    if target.kind == "oci":
        writer = layout if layout is not None else LayoutWriter(target.path)
        try:
            writer.commit_blobs(
                store, index.index, index.blobs(), tag, None, cancel=cancel, waiting=waiting
            )
        except BaseException:
            writer.abandon()
            raise
    elif target.kind == "oci-archive":
        write_index_archive(
            target.path,
            store,
            index.index,
            index.blobs(),
            tag,
            reference,
            cancel=cancel,
            waiting=waiting,
        )
    else:
        raise OutputError(f"{target.kind} holds one image, not an image index")
