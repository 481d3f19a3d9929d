"""The one build path. `vinci build`, `push`, `diff`, `lock`, `inspect`, the workbench and the
library all build a spec by calling `build_spec` with a BuildOptions: the codec, the
timestamp, the jobs, the lock, the cache and the output are resolved here and nowhere else.

    spec file -> Spec -> (lock) -> Builder: layers into the cache -> (locked?) -> output
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.builder.footprint import Footprint
from engine.builder.lock import Lock, check_locked, lock_path, read_lock
from engine.builder.options import BuildOptions
from engine.builder.pool import Builder, own_files
from engine.builder.result import BuildResult
from engine.cache.image import StoredImage
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.codec import get_codec
from engine.errors import LockError, UsageError
from engine.events import EventSink, OutputWaiting, discard
from engine.oci.reference import ImageReference, parse_reference
from engine.output import OutputTarget, parse_output
from engine.output.image import write_image
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
) -> BuildResult:
    """Build `spec` (a Spec, or the path of one) as `options` say, write the output they name,
    and return the result. With `lock="require"` nothing is written unless the image is
    exactly the locked one. A failed or cancelled build leaves an existing output as it was."""
    options = options or BuildOptions()
    created = options.timestamp()
    spec = open_spec(spec)
    target = parse_output(options.output) if options.output else None
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
    try:
        result = builder.build(
            spec,
            sink,
            cancel,
            created=created,
            footprint=footprint,
            mirror=layout.blob_dir if layout is not None else None,
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
    result: BuildResult,
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
    layers = tuple(d for r in result.layers for d in r.record.descriptors)
    spec = result.spec

    def waiting() -> None:
        sink(OutputWaiting(str(target)))

    write_image(
        target,
        StoredImage(result.manifest, result.config, layers),
        store,
        tag=tag or spec.tag,
        platform=spec.platform,
        reference=reference or spec.image,
        cancel=cancel,
        waiting=waiting,
        layout=layout,
    )


def within(path: Path, sources: tuple[Path, ...] | list[Path]) -> bool:
    """Whether `path` is one of `sources` or lies below one (symlinks resolved)."""
    real = Path(os.path.realpath(path))
    return any(real.is_relative_to(os.path.realpath(source)) for source in sources)
