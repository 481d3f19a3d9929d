"""Opens either side of a diff: a spec (built on the fly, through the cache: an unchanged spec
costs only planning), or any image engine.sources.image opens (a layout, an archive, a
registry reference)."""

from __future__ import annotations

from collections.abc import Callable

from engine.builder.result import BuildResult
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.oci.descriptor import Platform
from engine.sources.image import OpenedImage, open_image, parse_target
from engine.spec.load import load_spec
from engine.spec.locate import find_spec
from engine.spec.model import Spec


def open_side(
    text: str,
    *,
    store: BlobStore,
    build: Callable[[Spec], BuildResult],
    platform: Platform,
    cancel: CancelToken | None = None,
) -> OpenedImage:
    """Open what `text` names; `build` builds a spec into `store`."""
    target = parse_target(text)
    if target.kind == "spec":
        return build(load_spec(find_spec(target.value))).image(store)
    return open_image(text, platform=platform, store=store, cancel=cancel)
