"""vinci's headless engine: spec loading, deterministic layers, the cache, the worker pool,
image assembly and outputs. It never imports Textual; the workbench and the CLI use only the
names exported here and in the submodules they name.
"""

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
