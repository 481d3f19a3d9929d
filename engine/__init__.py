"""vinci's engine as a library: load a spec, build it, write or push the image, open any image
(a layout, an archive, a registry reference), compare two. The command line (engine.cli) and
the workbench (vinci_tui) use only what this module exports.

    spec = engine.load_spec("examples/hello")
    result = engine.build(spec, engine.BuildOptions(output="oci:hello.oci"))
    print(result.manifest.digest)
"""

from __future__ import annotations

from engine.builder.options import BuildOptions
from engine.builder.pool import Builder
from engine.builder.result import BuildResult, LayerResult
from engine.builder.run import build_spec as build
from engine.cache.store import BlobStore, default_cache_root
from engine.codec import CODEC_NAMES, Codec, get_codec
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
from engine.events import CancelToken, Event, EventSink
from engine.oci.descriptor import Descriptor, Platform
from engine.oci.digest import Digest
from engine.spec import Spec, load_spec
from engine.spec.locate import find_spec, locate_spec

__all__ = [
    "CODEC_NAMES",
    "BlobStore",
    "BuildCancelled",
    "BuildOptions",
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
    "LockError",
    "OutputError",
    "Platform",
    "RegistryError",
    "SourceError",
    "Spec",
    "SpecError",
    "UsageError",
    "VinciError",
    "build",
    "default_cache_root",
    "find_spec",
    "get_codec",
    "load_spec",
    "locate_spec",
]
