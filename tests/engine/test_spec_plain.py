"""engine/spec/plain.py: a spec kept as plain data comes back equal to its parse, for every
valid spec of test_spec_load; only the model's own classes come back from it; and a kept spec
stands only while its host paths are still what the spec needs."""

from __future__ import annotations

import dataclasses
import inspect
import marshal
import os
from pathlib import Path

import pytest
from test_spec_load import EVERY_LAYER_KIND, VALID, load_valid, make_sources

import engine.spec.model as model
from engine.errors import Position
from engine.spec.plain import _CLASSES, from_plain, host_paths, still_valid, to_plain


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    return make_sources(tmp_path / "proj")


@pytest.mark.parametrize("name", sorted(VALID))
def test_every_valid_spec_comes_back_equal(sources: Path, name: str) -> None:
    spec = load_valid(sources, name)
    # Through marshal, as the stamp stores it.
    back = from_plain(marshal.loads(marshal.dumps(to_plain(spec))))
    assert back == spec
    assert back is not None and back.raw == spec.raw and back.raw


def test_every_model_class_has_a_plain_form() -> None:
    """A value class added to the model without a plain form would fail every stamp."""
    found = {
        cls
        for _, cls in inspect.getmembers(model, inspect.isclass)
        if dataclasses.is_dataclass(cls) and cls.__module__ == model.__name__
    }
    assert found <= set(_CLASSES.values())
    assert Position in _CLASSES.values()


def test_only_the_model_classes_come_back(sources: Path) -> None:
    spec = load_valid(sources, EVERY_LAYER_KIND)
    format_, data = to_plain(spec)

    def swap(value: object, old: str, new: str) -> object:
        if isinstance(value, tuple):
            if value[:2] == ("v", old):
                return ("v", new, value[2])
            return tuple(swap(v, old, new) for v in value)
        return value

    for foreign in ("Path", "LayerRecord", "__builtins__", "object"):
        assert from_plain((format_, swap(data, "Position", foreign))) is None
    assert from_plain((format_ + 1, data)) is None  # another format
    assert from_plain((format_, ("x", data))) is None  # an unknown tag
    assert from_plain((format_, ("v", "Spec", ()))) is None  # fields missing
    assert from_plain((format_, ("v", "Position", ("a", 1, 1)))) is None  # not a Spec
    assert from_plain(None) is None and from_plain(b"junk") is None


def test_a_kept_spec_stands_while_its_host_paths_do(sources: Path) -> None:
    spec = load_valid(sources, EVERY_LAYER_KIND)
    display = spec.display_path
    paths = host_paths(spec)
    assert {want for _, want in paths} == {"file", "dir", "image"}
    assert still_valid(spec, display) == spec
    # Named another way: positions carry the name, so it is parsed again.
    assert still_valid(spec, os.path.relpath(display)) is None
    # A source of a file layer that became a directory: the parse would refuse it.
    source = next(p for p, want in paths if want == "file" and p.is_file())
    source.unlink()
    source.mkdir()
    assert still_valid(spec, display) is None
    source.rmdir()
    assert still_valid(spec, display) is None  # gone
    source.write_text("back\n")
    assert still_valid(spec, display) == spec
