"""The one build path. `vinci build`, `push`, `diff`, `lock`, `inspect`, the workbench and the
library all build a spec by calling `build_spec` with a BuildOptions: the codec, the
timestamp, the jobs, the lock, the cache and the output are resolved here and nowhere else.

    spec file -> Spec -> (lock) -> Builder: layers into the cache -> (locked?) -> output
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.builder.assemble import assemble_index, rfc3339
from engine.builder.footprint import Footprint, HeldLayers
from engine.builder.lock import Lock, check_locked, lock_path, read_lock
from engine.builder.options import BuildOptions
from engine.builder.pool import Builder, own_files
from engine.builder.result import BuildResult, Built, IndexResult
from engine.cache.image import StoredImage, StoredIndex
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.codec import get_codec
from engine.errors import LockError, UsageError
from engine.events import EventSink, OutputWaiting, discard
from engine.oci import mediatypes
from engine.oci.descriptor import Platform
from engine.oci.reference import ImageReference, parse_reference
from engine.output import OutputTarget, parse_output
from engine.output.image import write_image, write_index
from engine.output.layout import LayoutWriter
from engine.spec.load import load_spec
from engine.spec.locate import find_spec
from engine.spec.model import Spec


def open_spec(spec: Spec | str | os.PathLike[str] | None) -> Spec:
    """`spec` itself, or the spec a path names (a file, or a directory holding vinci.yaml)."""
    return spec if isinstance(spec, Spec) else load_spec(find_spec(spec))


def spec_lock(spec: Spec, options: BuildOptions) -> Lock | None:
    """The lock `options` ask the build of `spec` to honour: its vinci.lock unless the mode is
    "ignore"; with "require", a missing lock is an error."""
    if options.lock == "ignore":
        return None
    path = lock_path(spec)
    lock = read_lock(path)
    if lock is None and options.lock == "require":
        raise LockError(f"--locked: no {path}; `vinci lock` writes it")
    return lock


def builder_for(spec: Spec, options: BuildOptions) -> Builder:
    """The Builder `options` ask for, with the lock and the remote cache they ask for."""
    remote = options.remote()
    return Builder(
        BlobStore(options.cache_dir),
        get_codec(options.codec, options.level),
        options.jobs,
        lock=spec_lock(spec, options),
        remote=remote if remote.enabled else None,
    )


def build_spec(
    spec: Spec | str | os.PathLike[str] | None,
    options: BuildOptions | None = None,
    *,
    sink: EventSink = discard,
    cancel: CancelToken | None = None,
    footprint: Footprint | None = None,
    held: HeldLayers | None = None,
) -> Built:
    """Build `spec` (a Spec, or the path of one) as `options` say, write the output they name,
    and return the result: a BuildResult, or an IndexResult for a multi-platform spec (one
    BuildResult per platform). With `lock="require"` nothing is written unless the image is
    exactly the locked one. A failed or cancelled build leaves an existing output as it was.

    What planning looked at on the host is added to `footprint`. `held`: layers whose host
    inputs the caller found as an earlier build of this spec with these options recorded them
    (engine/builder/footprint.py); each is taken from that build's cache record without
    being planned, so its result has no plan (LayerResult.plan is None: a caller that needs
    plans passes none). A parameter, not an option: it says what held at one moment, while
    BuildOptions describe a build that can be run again. Ignored for an image index."""
    options = options or BuildOptions()
    created = options.timestamp()
    spec = with_options(open_spec(spec), options, created)
    platforms = chosen_platforms(spec, options)
    if spec.is_index and options.platforms and len(platforms) == 1:
        spec = spec.for_platform(platforms[0])  # one platform chosen: its plain image
    target = parse_output(options.output) if options.output else None
    if spec.is_index and target is not None and target.kind == "docker-archive":
        names = ", ".join(str(p) for p in platforms)
        raise UsageError(
            f"docker-archive holds one image and {spec.display_path} builds an index of "
            f"{names}: choose one with --platform, or write oci-archive:FILE"
        )
    builder = builder_for(spec, options)
    # An OCI layout is readied first and takes each new blob as it is made, instead of a copy
    # after the build. Not with --locked: nothing may be written unless the image is the
    # locked one. Not inside a source the build reads either (but for the default output,
    # which no walk enters): a layer would take in whatever of the layout exists while it is
    # walked.
    layout = None
    if target is not None and target.kind == "oci" and options.lock != "require":
        own = os.path.realpath(target.path) in own_files(spec, builder.store)
        if own or not within(target.path, spec.sources):
            layout = LayoutWriter(target.path)
    mirror = layout.blob_dir if layout is not None else None
    try:
        result: Built
        if spec.is_index:
            result = _build_index(
                spec, platforms, builder, sink, cancel, created, footprint, mirror
            )
        else:
            result = builder.build(
                spec,
                sink,
                cancel,
                created=created,
                footprint=footprint,
                mirror=mirror,
                held=held,
            )
        if options.lock == "require" and builder.lock is not None:
            check_locked(lock_path(spec), builder.lock.lock, result, builder.store)
        if target is not None:
            image, tag = output_name(spec, options)
            write_output(
                target,
                result,
                builder.store,
                tag=tag,
                reference=image,
                cancel=cancel,
                sink=sink,
                layout=layout,
            )
    except BaseException:
        # Only what this build made and nobody else uses goes (engine/output/layout.py).
        if layout is not None:
            layout.abandon()
        raise
    return result


def build_platform(
    spec: Spec | str | os.PathLike[str] | None,
    options: BuildOptions,
    platform: Platform,
    **kwargs: Any,
) -> BuildResult:
    """The one image of `spec` for `platform`: a multi-platform spec's image for it (built
    as `--platform` would), a one-platform spec's own image whatever `platform` says."""
    spec = open_spec(spec)
    if spec.is_index:
        options = replace(options, platforms=(str(platform),))
    result = build_spec(spec, options, **kwargs)
    assert isinstance(result, BuildResult)  # one platform chosen: never an index
    return result


def _build_index(
    spec: Spec,
    platforms: tuple[Platform, ...],
    builder: Builder,
    sink: EventSink,
    cancel: CancelToken | None,
    created: int,
    footprint: Footprint | None,
    mirror: Path | None,
) -> IndexResult:
    """Each platform's image, one after the other into one cache: a layer the same for
    several platforms has the same cache key, so only the first build makes it and the
    others find it (one blob, one digest); then the index of their manifests."""
    started = time.monotonic()
    images = tuple(
        builder.build(
            spec.for_platform(p), sink, cancel, created=created, footprint=footprint, mirror=mirror
        )
        for p in platforms
    )
    store = builder.store.mirrored(mirror) if mirror is not None else builder.store
    index = assemble_index(spec, [(r.manifest, r.spec.platform) for r in images], store)
    return IndexResult(spec, index, images, time.monotonic() - started, created)


def chosen_platforms(spec: Spec, options: BuildOptions) -> tuple[Platform, ...]:
    """The platforms `options.platforms` pick of the spec's (every one when none)."""
    try:
        wanted = tuple(Platform.parse(p) for p in options.platforms)
        return spec.select(wanted)
    except ValueError as e:
        raise UsageError(f"--platform: {e}") from None


def with_options(spec: Spec, options: BuildOptions, created: int) -> Spec:
    """`spec` with what the options add to its image: labels into the config's labels,
    annotations (and org.opencontainers.image.created when the time was given) into its
    manifest's, the options' over the spec's."""
    annotations = dict(spec.annotations)
    if options.stamped():
        annotations = {mediatypes.CREATED_ANNOTATION: rfc3339(created), **annotations}
    annotations.update(options.annotations)
    config = spec.config
    if options.labels:
        config = replace(
            config, labels=tuple({**dict(config.labels), **dict(options.labels)}.items())
        )
    if annotations == dict(spec.annotations) and config is spec.config:
        return spec
    return replace(spec, annotations=tuple(annotations.items()), config=config)


def output_name(spec: Spec, options: BuildOptions) -> tuple[ImageReference | None, str]:
    """The name (repository) and tag an output is given: `options.image` and `options.tag`
    where given (an image's own tag counts), else the spec's."""
    image = spec.image
    tag = ""
    if options.image:
        try:
            image = parse_reference(options.image)
        except ValueError as e:
            raise UsageError(f"--image {options.image!r}: {e}") from None
        if image.digest:
            raise UsageError(f"--image {options.image!r}: name an image by tag, not digest")
        tag = image.tag
    tag = options.tag or tag or (image.tag if image is not None and image.tag else "") or "latest"
    return image, tag


def write_output(
    target: OutputTarget,
    result: Built,
    store: BlobStore,
    *,
    tag: str | None = None,
    reference: ImageReference | None = None,
    cancel: CancelToken | None = None,
    sink: EventSink = discard,
    layout: LayoutWriter | None = None,
) -> None:
    """Write a build's image to `target` from the cache, named `tag` or as its spec names it,
    into `layout` if the build readied one. `cancel` is honoured until the output begins to
    change; OutputWaiting is sent once if another writer holds the output."""
    spec = result.spec

    def waiting() -> None:
        sink(OutputWaiting(str(target)))

    if isinstance(result, IndexResult):
        write_index(
            target,
            StoredIndex(result.index, tuple(stored(r) for r in result.images)),
            store,
            tag=tag or spec.tag,
            reference=reference or spec.image,
            cancel=cancel,
            waiting=waiting,
            layout=layout,
        )
        return
    write_image(
        target,
        stored(result),
        store,
        tag=tag or spec.tag,
        platform=spec.platform,
        reference=reference or spec.image,
        cancel=cancel,
        waiting=waiting,
        layout=layout,
    )


def stored(result: BuildResult) -> StoredImage:
    """A one-platform build's image as the output sinks take it."""
    layers = tuple(d for r in result.layers for d in r.record.descriptors)
    return StoredImage(result.manifest, result.config, layers)


def within(path: Path, sources: tuple[Path, ...] | list[Path]) -> bool:
    """Whether `path` is one of `sources` or lies below one (symlinks resolved)."""
    real = Path(os.path.realpath(path))
    return any(real.is_relative_to(os.path.realpath(source)) for source in sources)
