"""Spec v1: loading, validation, the model, and the JSON Schema.

The loader (and pyyaml with it) is imported on first use of `load_spec` or `load_spec_text`
(PEP 562), not with the model: a build that takes the spec its last build parsed
(engine/spec/plain.py) never needs it, and importing pyyaml costs more than 15 ms.
"""

from __future__ import annotations

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
    layer_summary,
)

TYPE_CHECKING = False  # see engine/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from engine.spec.load import load_spec, load_spec_text

_LOADER = ("load_spec", "load_spec_text")

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
    "layer_summary",
    "load_spec",
    "load_spec_text",
]


def __getattr__(name: str) -> Any:
    if name not in _LOADER:
        raise AttributeError(f"module 'engine.spec' has no attribute {name!r}")
    from engine.spec import load

    value = getattr(load, name)
    globals()[name] = value
    return value
