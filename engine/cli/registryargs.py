"""Registry commands of the `vinci` CLI, and the push options `vinci build` shares with them.

    vinci push [SPEC] [--image REPO] [--tag TAG]...    build from the cache and push
    vinci resolve REF [--platform P]                   the digest a tag names now, for pinning
    vinci login REGISTRY [-u USER] [--password-stdin]  save credentials in docker's config.json
    vinci logout REGISTRY                              forget them

Each command is its own module (`add_arguments(parser)`, `run(args) -> int`), registered in
engine/cli/main.py by name so it is imported only when invoked. This module imports no httpx:
`vinci build` uses it to parse `--push` without loading the registry client.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from engine.errors import UsageError

if TYPE_CHECKING:
    import argparse

    from engine.builder.result import Built
    from engine.cache.store import BlobStore
    from engine.cancel import CancelToken
    from engine.events import Event, EventSink
    from engine.oci.reference import ImageReference
    from engine.registry.options import RegistryOptions
    from engine.registry.push import PushResult
    from engine.spec.model import Spec


def add_registry_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--insecure-registry",
        action="append",
        metavar="HOST",
        help="allow HOST[:PORT] without TLS verification, or over plain HTTP (repeatable)",
    )
    p.add_argument(
        "--ca-file",
        metavar="PEM",
        help="CA bundle to trust for registries, besides the system's",
    )


def add_push_arguments(p: argparse.ArgumentParser, *, for_build: bool = True) -> None:
    """`--push`, `--image`, `--tag` and the registry options."""
    if for_build:
        p.add_argument("--push", action="store_true", help="push the image after building it")
    p.add_argument(
        "--image",
        metavar="REPO",
        help="push to this registry/repository instead of the spec's `image` (`build` also "
        "names its output by it)",
    )
    p.add_argument(
        "--tag",
        "-t",
        action="append",
        metavar="TAG",
        help="tag to push (repeatable; default: the image's tag, else latest); `build` also "
        "names its output (layout ref, archive tag, loaded image) by the first",
    )
    add_registry_arguments(p)


def apply_registry_options(args: argparse.Namespace) -> RegistryOptions:
    """Install the command line's registry options for everything this process fetches."""
    from engine.registry.options import options_from_env, set_default_options

    options = options_from_env().with_cli(
        getattr(args, "insecure_registry", None), getattr(args, "ca_file", None)
    )
    set_default_options(options)
    return options


def push_target(args: argparse.Namespace, spec: Spec) -> tuple[ImageReference, tuple[str, ...]]:
    """Where `--push` sends the image: repository and tags. Checked before building."""
    from engine.oci.reference import parse_reference

    image = getattr(args, "image", None)
    if image:
        try:
            ref = parse_reference(image)
        except ValueError as e:
            raise UsageError(f"--image: {e}") from None
    elif spec.image is not None:
        ref = spec.image
    else:
        raise UsageError(
            f"{spec.display_path} names no `image` to push to; pass --image REGISTRY/REPOSITORY"
        )
    if ref.digest is not None:
        raise UsageError(f"cannot push to {ref}: a digest names content, not a destination")
    tags = tuple(getattr(args, "tag", None) or [ref.tag or "latest"])
    for tag in tags:
        try:
            parse_reference(f"{ref.name}:{tag}")
        except ValueError:
            raise UsageError(f"--tag {tag!r} is not a valid tag") from None
    return ref.with_tag(""), tags


def push_built(
    args: argparse.Namespace,
    target: tuple[ImageReference, tuple[str, ...]],
    result: Built,
    store: BlobStore,
    progress: EventSink | None = None,
    cancel: CancelToken | None = None,
) -> PushResult:
    """Push a build's image (an index: each platform's manifest, then the index). Events go
    to `progress` (the live display) when there is one, else to one line per blob on stderr;
    a summary follows unless --quiet or --json. The uploads stop at their next chunk once
    `cancel` is cancelled."""
    from engine.events import discard
    from engine.registry.push import push_image

    ref, tags = target
    indexes = {d.digest: r.index for r in result.layers for d in r.record.descriptors}
    quiet = bool(getattr(args, "quiet", False) or getattr(args, "json", False))
    sink: EventSink = progress or (discard if quiet else PushLog(sys.stderr))
    pushed = push_image(
        store,
        result.manifest,
        ref,
        tags,
        options=apply_registry_options(args),
        sink=sink,
        cancel=cancel,
        layer_indexes=indexes,
    )
    if not quiet:
        print(summary(pushed), file=sys.stderr)
    return pushed


def summary(pushed: PushResult) -> str:
    from engine.humanize import human_bytes

    return (
        f"pushed {', '.join(pushed.references())} ({pushed.uploaded} blobs uploaded, "
        f"{human_bytes(pushed.bytes_sent)}; {pushed.mounted} mounted; {pushed.skipped} already "
        f"there) in {pushed.seconds:.2f}s"
    )


class PushLog:
    """A plain event sink for push events: one line per blob (for logs and pipes)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, event: Event) -> None:
        from engine.events import BlobMounted, BlobPushed, BlobSkipped
        from engine.humanize import human_bytes

        if isinstance(event, BlobPushed):
            line = f"uploaded {event.digest.short} ({human_bytes(event.size)})"
        elif isinstance(event, BlobMounted):
            line = f"mounted  {event.digest.short} from {event.source}"
        elif isinstance(event, BlobSkipped):
            line = f"present  {event.digest.short}"
        else:
            return
        print(line, file=self._stream, flush=True)
