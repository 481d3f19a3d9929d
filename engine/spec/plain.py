"""A validated Spec as plain data (tuples of strings, numbers and bytes, as marshal writes
them) and back: the form in which a build's stamp keeps the spec it parsed, so that the next
build of the same bytes with the same code need not load pyyaml and parse them again
(engine/uptodate.py says when a kept spec may stand in for a parse).

Only the spec model's own value classes are rebuilt, by name from a fixed list: the data comes
from a cache directory, and nothing in it can make this module build or call anything else.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from engine.descriptor import Platform
from engine.digest import Digest
from engine.errors import Position
from engine.reference import ImageReference
from engine.spec import model
from engine.spec.hostpath import host_path_problem
from engine.spec.model import CombinedSpec, DirectorySpec, FileSpec, ImportSpec, LayerSpec, Spec

FORMAT = 1
# Every value class of the model, and those it holds from elsewhere.
_CLASSES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (*vars(model).values(), Position, Platform, ImageReference, Digest)
    if isinstance(cls, type) and is_dataclass(cls)
}
_ATOMS = (str, int, bytes, type(None))  # bool is an int; marshal keeps it a bool


def to_plain(spec: Spec) -> tuple[Any, ...]:
    """`spec` as plain data. Every value is an atom or a tagged tuple: ("t", items) for a
    tuple, ("p", text) for a path, ("v", class name, field values) for a model value."""
    return (FORMAT, _plain(spec))


def _plain(value: object) -> object:
    if isinstance(value, _ATOMS):
        return value
    if isinstance(value, Path):
        return ("p", str(value))
    if isinstance(value, tuple):
        return ("t", tuple(_plain(v) for v in value))
    name = type(value).__name__
    if is_dataclass(value) and _CLASSES.get(name) is type(value):
        return ("v", name, tuple(_plain(getattr(value, f.name)) for f in fields(value)))
    raise TypeError(f"a spec holds a {name}, which has no plain form")


def from_plain(data: object) -> Spec | None:
    """The Spec `data` was made from, or None if it is not what to_plain makes (another
    format, a damaged file)."""
    try:
        if not isinstance(data, tuple) or len(data) != 2 or data[0] != FORMAT:
            return None
        spec = _value(data[1])
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    return spec if isinstance(spec, Spec) else None


def _value(data: object) -> object:
    if isinstance(data, _ATOMS):
        return data
    if not isinstance(data, tuple):
        raise TypeError(f"not plain spec data: {type(data).__name__}")
    tag = data[0]
    if tag == "p":
        return Path(data[1])
    if tag == "t":
        return tuple(_value(v) for v in data[1])
    if tag == "v":
        cls = _CLASSES[data[1]]
        names = [f.name for f in fields(cls)]
        if len(names) != len(data[2]):
            raise ValueError(f"{data[1]} has {len(names)} fields, the data {len(data[2])}")
        return cls(**{n: _value(v) for n, v in zip(names, data[2], strict=True)})
    raise ValueError(f"not plain spec data: tag {tag!r}")


def host_paths(spec: Spec) -> list[tuple[Path, str]]:
    """Every host path `spec` reads, with what it must be (engine/spec/hostpath.py)."""
    found: list[tuple[Path, str]] = []

    def add(node: LayerSpec) -> None:
        if isinstance(node, FileSpec) and node.source is not None:
            found.append((node.source, "file"))
        elif isinstance(node, DirectorySpec) and node.source is not None:
            found.append((node.source, "dir"))
        elif isinstance(node, ImportSpec):
            found.append((node.path, "image"))
        elif isinstance(node, CombinedSpec):
            for part in node.parts:
                add(part)

    for layer in spec.layers:
        add(layer)
    return found


def still_valid(spec: Spec, display: str) -> Spec | None:
    """`spec` as a parse of the same bytes would give it now, or None when a parse could
    differ: it was named another way (positions carry the name), or one of its host paths is
    no longer what the spec needs (the parse would report it)."""
    if spec.display_path != display:
        return None
    if any(host_path_problem(path, str(path), want) for path, want in host_paths(spec)):
        return None
    return spec
