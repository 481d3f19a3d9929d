"""vinci's engine as a library: load a spec, build it, write or push the image, open any image
(a layout, an archive, a registry reference), and say why two images differ. The command line
(engine.cli) and the workbench (vinci_tui) use what this module exports, as any script would:

    import engine

    result = engine.build("examples/hello", engine.BuildOptions(output="oci:hello.oci"))
    engine.push(result, "registry.example/team/hello:1")
    with engine.open_image("oci:hello.oci") as image:
        print(image.ref.manifest, [layer.diff_id for layer in image.layers])

Everything here is defined when `engine` is imported: values, protocols and errors directly,
the operations as functions whose implementations (the spec parser, the compressors, the
registry client) load when first called, so that `import engine` stays cheap for a command
that needs none of them. docs/library.md describes each name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engine.builder.options import BuildOptions
from engine.cancel import CancelToken
from engine.errors import (
    BuildCancelled,
    CacheError,
    ImageImportError,
    LockError,
    OutputError,
    RegistryError,
    SourceError,
    SpecError,
    UsageError,
    VinciError,
)
from engine.oci.descriptor import Descriptor, Platform
from engine.oci.digest import Digest
from engine.oci.image import Image, ImageRef, Layer

if TYPE_CHECKING:
    from engine.builder.result import BuildResult, IndexResult
    from engine.cache.store import BlobStore
    from engine.compare.model import ImageDiff
    from engine.events import EventSink
    from engine.registry.push import PushResult
    from engine.sources.image import OpenedImage
    from engine.spec.model import Spec

PathLike = str | os.PathLike[str]


def load_spec(path: PathLike | None = None) -> Spec:
    """The spec at `path` (a file, or a directory holding vinci.yaml; default: the current
    directory's), validated. Raises SpecError with every problem at its file:line:col."""
    from engine.spec.load import load_spec as load
    from engine.spec.locate import find_spec

    return load(find_spec(path))


def build(
    spec: Spec | PathLike | None,
    options: BuildOptions | None = None,
    *,
    sink: EventSink | None = None,
    cancel: CancelToken | None = None,
) -> BuildResult | IndexResult:
    """Build `spec` (a Spec or the path of one) as `options` say: into the cache, and to
    `options.output` if it names one. A multi-platform spec gives an IndexResult (its
    `images`, one BuildResult per platform, and the `index`); `images_of` gives the images of
    either. `sink` receives every event; `cancel` stops the build at the next chunk of every
    running layer (BuildCancelled)."""
    from engine.builder.run import build_spec
    from engine.events import discard

    return build_spec(spec, options, sink=sink or discard, cancel=cancel)


def open_image(
    ref: PathLike,
    *,
    platform: Platform | str | None = None,
    cache_dir: PathLike | None = None,
) -> OpenedImage:
    """The image `ref` names: `oci:DIR[:TAG]` or a layout directory, `oci-archive:FILE`,
    `docker-archive:FILE` or an archive file, or a registry reference. From an index, the
    image for `platform` (default linux/amd64). Use it as a context manager."""
    from engine.cache.store import BlobStore
    from engine.sources.image import open_image as open_source

    if isinstance(platform, str):
        platform = _platform(platform)
    store = BlobStore(Path(cache_dir)) if cache_dir is not None else None
    return open_source(os.fspath(ref), platform=platform, store=store)


def write(
    image: Image | BuildResult | IndexResult,
    target: str,
    *,
    tag: str | None = None,
    cache_dir: PathLike | None = None,
) -> None:
    """Write `image` to `target`: `oci:DIR` (added to a layout by its tag), `oci-archive:FILE`
    or `docker-archive:FILE`. A build's image is named as its spec says unless `tag` is given;
    another image is written through the cache (`cache_dir`, default the user's)."""
    from engine.builder.result import BuildResult, IndexResult
    from engine.builder.run import write_output
    from engine.cache.image import store_image
    from engine.output import parse_output
    from engine.output.image import write_image

    out = parse_output(target)
    if isinstance(image, BuildResult | IndexResult):
        write_output(out, image, image.store(), tag=tag)
        return
    store = _store(cache_dir)
    stored = store_image(image, store)
    write_image(out, stored, store, tag=tag or "latest", platform=_image_platform(image))


def push(
    image: Image | BuildResult | IndexResult,
    reference: str,
    *,
    tags: Sequence[str] = (),
    cache_dir: PathLike | None = None,
    sink: EventSink | None = None,
    cancel: CancelToken | None = None,
) -> PushResult:
    """Push `image` to the repository `reference` names, under `tags` (default: the
    reference's tag, else "latest"). Credentials come from docker's config.json. A
    multi-platform build pushes every platform's manifest, then the index under `tags`."""
    from engine.builder.result import BuildResult, IndexResult
    from engine.cache.image import store_image
    from engine.oci.reference import parse_reference
    from engine.registry.push import push_image

    try:
        ref = parse_reference(reference)
    except ValueError as e:
        raise UsageError(f"{reference}: {e}") from None
    if ref.digest is not None:
        raise UsageError(f"cannot push to {ref}: a digest names content, not a destination")
    names = tuple(tags) or (ref.tag or "latest",)
    if isinstance(image, BuildResult | IndexResult):
        store = image.store()
        manifest = image.manifest
    else:
        store = _store(cache_dir)
        manifest = store_image(image, store).manifest
    from engine.events import discard

    return push_image(store, manifest, ref.with_tag(""), names, sink=sink or discard, cancel=cancel)


def diff(a: Image | BuildResult, b: Image | BuildResult, *, files: bool = True) -> ImageDiff:
    """Why image `b` differs from `a`: config and manifest fields, layers aligned by diff_id,
    and inside each changed layer the files and the cause of each change."""
    from engine.builder.result import BuildResult
    from engine.compare import diff_images

    first = a.image(a.store()) if isinstance(a, BuildResult) else a
    second = b.image(b.store()) if isinstance(b, BuildResult) else b
    return diff_images(first, second, files=files)


def images_of(result: BuildResult | IndexResult) -> tuple[BuildResult, ...]:
    """The one-platform results of a build: the image itself, or each image of an index (in
    the spec's order of platforms)."""
    from engine.builder.result import images_of as images

    return images(result)


def _store(cache_dir: PathLike | None) -> BlobStore:
    from engine.cache.store import BlobStore

    return BlobStore(Path(cache_dir) if cache_dir is not None else None)


def _platform(text: str) -> Platform:
    try:
        return Platform.parse(text)
    except ValueError as e:
        raise UsageError(f"platform {text!r}: {e}") from None


def _image_platform(image: Image) -> Platform:
    config = image.config
    return Platform(
        str(config.get("os") or "linux"),
        str(config.get("architecture") or "amd64"),
        str(config.get("variant") or ""),
    )


__all__ = [
    "BuildCancelled",
    "BuildOptions",
    "CacheError",
    "CancelToken",
    "Descriptor",
    "Digest",
    "Image",
    "ImageImportError",
    "ImageRef",
    "Layer",
    "LockError",
    "OutputError",
    "Platform",
    "RegistryError",
    "SourceError",
    "SpecError",
    "UsageError",
    "VinciError",
    "build",
    "diff",
    "images_of",
    "load_spec",
    "open_image",
    "push",
    "write",
]
