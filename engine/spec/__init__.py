"""Spec v1: loading, validation, the model, and the JSON Schema."""

from __future__ import annotations

from engine.spec.load import load_spec, load_spec_text
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
