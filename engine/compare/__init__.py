"""Why two images differ, from the top down: `vinci diff`, `vinci verify`'s explanations, the
workbench's "what changed since the last build", and `vinci build --locked`.

    load.py       open a side: a spec (built) or any image engine.sources opens
    image.py      manifest/config fields, layer alignment by diff_id, compression-only changes
    layers.py     file-by-file causes inside a changed layer
    model.py      the frozen result values, each with to_json()
    render.py     the text form

    with open_side(a, ...) as x, open_side(b, ...) as y:
        print(render(diff_images(x, y)))

    diff_results(previous, latest, store).headline()   # the workbench, after a rebuild
"""

from collections.abc import Collection

from engine.builder.result import BuildResult
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.compare.image import diff_images
from engine.compare.load import open_side
from engine.compare.model import Cause, FieldChange, FileChange, ImageDiff, LayerChange
from engine.compare.render import RenderedLine, render, render_lines


def diff_results(
    before: BuildResult,
    after: BuildResult,
    store: BlobStore,
    *,
    files: bool = True,
    cancel: CancelToken | None = None,
    text_paths: Collection[str] = (),
) -> ImageDiff:
    """Why build result `after` differs from `before` (both BuildResults whose blobs are in
    `store`). Only changed layers are read, streaming; run it off the UI thread."""
    with before.image(store) as a, after.image(store) as b:
        return diff_images(a, b, files=files, cancel=cancel, text_paths=text_paths)


__all__ = [
    "Cause",
    "FieldChange",
    "FileChange",
    "ImageDiff",
    "LayerChange",
    "RenderedLine",
    "diff_images",
    "diff_results",
    "open_side",
    "render",
    "render_lines",
]
