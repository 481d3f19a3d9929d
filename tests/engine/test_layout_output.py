"""`vinci build -o oci:DIR` writes each new blob into the layout as the build makes it
(engine/output/layout.py, BlobStore.mirrored), so nothing is copied afterwards; the layout is
the one a copy would have made; and a build that fails leaves an existing layout's image as it
was, and no layout where there was none."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.verify import oci_image_tool_validate, umoci_unpack
from trees import make_tree

import engine.builder.pool
import engine.output.layout
from engine.cli.main import main
from engine.errors import VinciError


def _build(spec: Path, cache: Path, out: Path, *extra: str) -> int:
    return main(["build", str(spec), "-q", "--cache-dir", str(cache), "-o", f"oci:{out}", *extra])


def _blobs(layout: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((layout / "blobs" / "sha256").iterdir())}


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the blobs write_layout copied from the cache."""
    made: list[str] = []
    real = engine.output.layout._copy_file

    def counting(src: Path, dest: Path, size: int, *rest: object) -> None:
        made.append(src.name)
        real(src, dest, size, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(engine.output.layout, "_copy_file", counting)
    return made


def test_a_cold_build_copies_nothing_and_gives_the_copied_layout(
    tmp_path: Path, copies: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make_tree(tmp_path / "src")
    assert _build(spec, tmp_path / "cache", tmp_path / "direct") == 0
    assert copies == []
    # From a warm cache into a new directory every blob is a copy: the same layout.
    assert _build(spec, tmp_path / "cache", tmp_path / "copied") == 0
    assert len(copies) == len(_blobs(tmp_path / "copied")) == 5  # 3 layers, config, manifest
    assert _blobs(tmp_path / "direct") == _blobs(tmp_path / "copied")
    direct = tmp_path / "direct"
    assert (direct / "index.json").read_bytes() == (tmp_path / "copied" / "index.json").read_bytes()
    assert json.loads((direct / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    # Its own files, not the cache's: editing the layout must never reach the cache.
    cached = tmp_path / "cache" / "v1" / "blobs" / "sha256"
    for name in _blobs(direct):
        assert os.stat(direct / "blobs" / "sha256" / name).st_ino != os.stat(cached / name).st_ino
    assert not [p for p in (direct / "blobs" / "sha256").iterdir() if p.name.startswith(".")]
    oci_image_tool_validate(direct)
    umoci_unpack(direct, "1", tmp_path / "bundle")  # the spec's image tag
    capsys.readouterr()


def _fail_second_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    real = engine.builder.pool.write_layer

    def failing(plan, codec, store, index, *rest):  # type: ignore[no-untyped-def]
        if index == 2:
            raise VinciError("the disk is on fire")
        return real(plan, codec, store, index, *rest)

    monkeypatch.setattr(engine.builder.pool, "write_layer", failing)


def test_a_failed_build_leaves_no_layout_where_there_was_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make_tree(tmp_path / "src")
    _fail_second_layer(monkeypatch)
    assert _build(spec, tmp_path / "cache", tmp_path / "out", "--jobs", "1") == 1
    assert "the disk is on fire" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # An empty directory the user made stays, empty.
    (tmp_path / "empty").mkdir()
    assert _build(spec, tmp_path / "cache", tmp_path / "empty", "--jobs", "1") == 1
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_failed_build_leaves_the_old_image_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make_tree(tmp_path / "src")
    out = tmp_path / "out"
    assert _build(spec, tmp_path / "cache", out) == 0
    index, before = (out / "index.json").read_bytes(), _blobs(out)
    (tmp_path / "src" / "tool").write_bytes(b"#!/bin/sh\necho changed\n")
    (tmp_path / "src" / "big.bin").write_bytes(b"changed" * 100_000)
    _fail_second_layer(monkeypatch)
    assert _build(spec, tmp_path / "cache", out, "--jobs", "1") == 1
    assert (out / "index.json").read_bytes() == index
    after = _blobs(out)
    assert {k: after[k] for k in before} == before  # every blob of the old image, unchanged
    oci_image_tool_validate(out)
    monkeypatch.undo()
    # The next good build leaves exactly its own blobs.
    assert _build(spec, tmp_path / "cache", out) == 0
    manifest_digest = json.loads((out / "index.json").read_bytes())["manifests"][0]["digest"]
    manifest = json.loads(_blobs(out)[manifest_digest.removeprefix("sha256:")])
    named = {manifest["config"]["digest"], manifest_digest}
    named |= {layer["digest"] for layer in manifest["layers"]}
    assert set(_blobs(out)) == {d.removeprefix("sha256:") for d in named}
    capsys.readouterr()


def test_a_layout_inside_a_source_is_written_after_the_build(
    tmp_path: Path, copies: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A layer of the spec's own directory must not see a layout being filled while it is
    walked. The default output is never walked (engine/builder/pool.py own_files): it is readied
    first as anywhere else. Another output there is written after the build, as a copy."""
    import gzip
    import io
    import tarfile

    project = tmp_path / "project"
    project.mkdir()
    (project / "hello.txt").write_text("hello\n")
    spec = project / "vinci.yaml"
    spec.write_text("spec-version: v1\nlayers:\n  - directory: {path: /app, source: .}\n")

    def names(out: Path) -> list[str]:
        digest = json.loads((out / "index.json").read_bytes())["manifests"][0]["digest"]
        manifest = json.loads(_blobs(out)[digest.removeprefix("sha256:")])
        layer = _blobs(out)[manifest["layers"][0]["digest"].removeprefix("sha256:")]
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
            return tar.getnames()

    cache = str(tmp_path / "cache")
    assert main(["build", str(spec), "-q", "--cache-dir", cache]) == 0
    assert copies == []  # readied first, filled as the blobs were made
    taken = names(project / "vinci.oci")
    assert "app/hello.txt" in taken and "app/vinci.yaml" in taken
    assert not [n for n in taken if "vinci.oci" in n]
    out = project / "out"
    assert main(["build", str(spec), "-q", "--cache-dir", cache, "-o", f"oci:{out}"]) == 0
    assert len(copies) == 3  # written after the build, as a copy
    assert not [n for n in names(out) if n.startswith("app/out")]
    capsys.readouterr()
