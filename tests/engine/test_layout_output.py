"""`vinci build -o oci:DIR` writes each new blob into the layout as the build makes it
(engine/output/layout.py, BlobStore.mirrored), so nothing is copied afterwards; the layout is
the one a copy would have made; and a build that fails leaves an existing layout's image as it
was, and no layout where there was none."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.verify import oci_image_tool_validate, umoci_unpack
from trees import make_tree

from engine.cli.main import main


def _build(spec: Path, cache: Path, out: Path, *extra: str) -> int:
    return main(["build", str(spec), "-q", "--cache-dir", str(cache), "-o", f"oci:{out}", *extra])


def _blobs(layout: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((layout / "blobs" / "sha256").iterdir())}


# Every file opened for reading, as the interpreter reports it (PEP 578): a blob copied from
# the cache into a layout is a cache blob opened for reading while the build runs.
_OPENED: list[str] | None = None


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event != "open" or _OPENED is None or not isinstance(args[0], str | Path):
        return
    path, mode, flags = args
    if mode is None:  # os.open: the access mode is in the flags
        reading = isinstance(flags, int) and flags & os.O_ACCMODE != os.O_WRONLY
    else:
        reading = "r" in str(mode) or "+" in str(mode)
    if reading:
        _OPENED.append(os.fspath(path))  # type: ignore[arg-type]


sys.addaudithook(_audit)


@pytest.fixture
def opened() -> Iterator[list[str]]:
    """Every file the test's builds open for reading."""
    global _OPENED
    _OPENED = []
    yield _OPENED
    _OPENED = None


def copied(opened: list[str]) -> list[str]:
    """The cache blobs among them: each one copied into a layout (the cache's blobs are never
    read otherwise by these builds)."""
    blobs = os.path.join("cache", "v1", "blobs", "sha256") + os.sep
    return [os.path.basename(p) for p in opened if blobs in p]


def test_a_cold_build_copies_nothing_and_gives_the_copied_layout(
    tmp_path: Path, opened: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make_tree(tmp_path / "src")
    assert _build(spec, tmp_path / "cache", tmp_path / "direct") == 0
    assert copied(opened) == []
    # From a warm cache into a new directory every blob is a copy: the same layout.
    assert _build(spec, tmp_path / "cache", tmp_path / "copied") == 0
    assert (
        len(copied(opened)) == len(_blobs(tmp_path / "copied")) == 5
    )  # 3 layers, config, manifest
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


def _with_archive(spec: Path, whole: bool) -> None:
    """Add a fourth layer, a tar archive, to the tree's spec: whole, or cut short so that the
    layer fails while it is written, after the layers before it were built."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = os.urandom(200_000)
        info = tarfile.TarInfo("opt/data.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    archive = buffer.getvalue()
    (spec.parent / "archive.tgz").write_bytes(archive if whole else archive[: len(archive) // 2])
    text = spec.read_text()
    if "archive.tgz" not in text:
        spec.write_text(text + "  - tar: ./archive.tgz\n")


def test_a_failed_build_leaves_no_layout_where_there_was_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make_tree(tmp_path / "src")
    _with_archive(spec, whole=False)
    assert _build(spec, tmp_path / "cache", tmp_path / "out", "--jobs", "1") == 1
    assert "archive.tgz cannot be decompressed" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # An empty directory the user made stays, empty.
    (tmp_path / "empty").mkdir()
    assert _build(spec, tmp_path / "cache", tmp_path / "empty", "--jobs", "1") == 1
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_failed_build_leaves_the_old_image_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make_tree(tmp_path / "src")
    _with_archive(spec, whole=True)
    out = tmp_path / "out"
    assert _build(spec, tmp_path / "cache", out) == 0
    index, before = (out / "index.json").read_bytes(), _blobs(out)
    (tmp_path / "src" / "tool").write_bytes(b"#!/bin/sh\necho changed\n")
    (tmp_path / "src" / "big.bin").write_bytes(b"changed" * 100_000)
    _with_archive(spec, whole=False)  # the last layer fails after the two changed ones were made
    assert _build(spec, tmp_path / "cache", out, "--jobs", "1") == 1
    assert (out / "index.json").read_bytes() == index
    after = _blobs(out)
    assert {k: after[k] for k in before} == before  # every blob of the old image, unchanged
    oci_image_tool_validate(out)
    _with_archive(spec, whole=True)
    # The next good build leaves exactly its own blobs.
    assert _build(spec, tmp_path / "cache", out) == 0
    manifest_digest = json.loads((out / "index.json").read_bytes())["manifests"][0]["digest"]
    manifest = json.loads(_blobs(out)[manifest_digest.removeprefix("sha256:")])
    named = {manifest["config"]["digest"], manifest_digest}
    named |= {layer["digest"] for layer in manifest["layers"]}
    assert set(_blobs(out)) == {d.removeprefix("sha256:") for d in named}
    capsys.readouterr()


def test_a_layout_inside_a_source_is_written_after_the_build(
    tmp_path: Path, opened: list[str], capsys: pytest.CaptureFixture[str]
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
    assert copied(opened) == []  # readied first, filled as the blobs were made
    taken = names(project / "vinci.oci")
    assert "app/hello.txt" in taken and "app/vinci.yaml" in taken
    assert not [n for n in taken if "vinci.oci" in n]
    out = project / "out"
    assert main(["build", str(spec), "-q", "--cache-dir", cache, "-o", f"oci:{out}"]) == 0
    assert len(copied(opened)) == 3  # written after the build, as a copy
    assert not [n for n in names(out) if n.startswith("app/out")]
    capsys.readouterr()
