"""vinci's headless engine: spec loading, deterministic layers, the cache, the worker pool,
image assembly and outputs. It never imports Textual; the workbench and the CLI use only the
names exported here and in the submodules they name.

The names below are loaded on first use (PEP 562), not when `engine` is imported: the
entry point (engine/main.py) answers an up-to-date rebuild before any of them is needed, and
importing them all costs a bare `vinci build` more than the check itself.
"""

from __future__ import annotations

# Not typing.TYPE_CHECKING: importing typing costs more than the rest of this module (mypy
# treats any constant of this name as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from engine.build import Builder, BuildResult, LayerResult, build, source_date_epoch_from_env
    from engine.cache.store import BlobStore, default_cache_root
    from engine.codec import CODEC_NAMES, Codec, get_codec
    from engine.descriptor import Descriptor, Platform
    from engine.digest import Digest
    from engine.errors import (
        BuildCancelled,
        CacheError,
        ImageImportError,
        OutputError,
        RegistryError,
        SourceError,
        SpecError,
        VinciError,
    )
    from engine.events import CancelToken, Event, EventSink
    from engine.spec import Spec, load_spec

_EXPORTS = {
    "engine.build": (
        "Builder",
        "BuildResult",
        "LayerResult",
        "build",
        "source_date_epoch_from_env",
    ),
    "engine.cache.store": ("BlobStore", "default_cache_root"),
    "engine.codec": ("CODEC_NAMES", "Codec", "get_codec"),
    "engine.descriptor": ("Descriptor", "Platform"),
    "engine.digest": ("Digest",),
    "engine.errors": (
        "BuildCancelled",
        "CacheError",
        "ImageImportError",
        "OutputError",
        "RegistryError",
        "SourceError",
        "SpecError",
        "VinciError",
    ),
    "engine.events": ("CancelToken", "Event", "EventSink"),
    "engine.spec": ("Spec", "load_spec"),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "CODEC_NAMES",
    "BlobStore",
    "BuildCancelled",
    "BuildResult",
    "Builder",
    "CacheError",
    "CancelToken",
    "Codec",
    "Descriptor",
    "Digest",
    "Event",
    "EventSink",
    "ImageImportError",
    "LayerResult",
    "OutputError",
    "Platform",
    "RegistryError",
    "SourceError",
    "Spec",
    "SpecError",
    "VinciError",
    "build",
    "default_cache_root",
    "get_codec",
    "load_spec",
    "source_date_epoch_from_env",
]


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
