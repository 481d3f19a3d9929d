"""Spec v1: loading, validation, the model, and the JSON Schema.

The model is defined when the package is imported; the loader (and pyyaml with it) when a
spec is first loaded: the up-to-date check locates a spec and reads its bytes but never
parses it.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.spec.model import (
    CombinedSpec,
    ConfigSpec,
    DirectorySpec,
    FileSpec,
    ImportOCISpec,
    ImportSpec,
    LayerSpec,
    Spec,
    SymlinkSpec,
    TarSpec,
    layer_summary,
)


def load_spec(path: str | os.PathLike[str], *, check_sources: bool = True) -> Spec:
    """Load and validate the spec at `path`; raise SpecError listing every problem."""
    from engine.spec import load

    return load.load_spec(path, check_sources=check_sources)


def load_spec_text(raw: bytes, absolute: Path, display: str, *, check_sources: bool = True) -> Spec:
    """Validate spec text as if read from `absolute` (shown as `display` in messages)."""
    from engine.spec import load

    return load.load_spec_text(raw, absolute, display, check_sources=check_sources)


__all__ = [
    "CombinedSpec",
    "ConfigSpec",
    "DirectorySpec",
    "FileSpec",
    "ImportOCISpec",
    "ImportSpec",
    "LayerSpec",
    "Spec",
    "SymlinkSpec",
    "TarSpec",
    "layer_summary",
    "load_spec",
    "load_spec_text",
]
