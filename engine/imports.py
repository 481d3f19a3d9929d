"""Import layers: the layers of an existing image, entering ours byte for byte.

Fetching lives with the registry work; until then an import layer fails with a clear message.
"""

from __future__ import annotations

from engine.cache.records import LayerRecord
from engine.cache.store import BlobStore
from engine.descriptor import Platform
from engine.errors import ImageImportError
from engine.events import CancelToken, EventSink
from engine.spec.model import ImportOCISpec, ImportSpec


def import_layers(
    node: ImportSpec | ImportOCISpec,
    store: BlobStore,
    platform: Platform,
    index: int,
    sink: EventSink,
    cancel: CancelToken | None,
) -> tuple[LayerRecord, bool]:
    """Bring the imported image's layers into the cache. Returns the record (its
    extra['config'] names the imported config blob) and whether it was already cached."""
    raise ImageImportError(f"{node.pos}: {node.label}: importing images is not available yet")
