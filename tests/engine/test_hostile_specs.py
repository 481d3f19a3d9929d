"""Hostile specs and source trees (docs/reliability.md, "Specs and source trees"): file names
that are not UTF-8, trees deeper than Python's recursion limit, specs with thousands of
problems, and alias bombs. Each runs through the command line, in bounded time (the run's
timeout) and memory (peak RSS under 200 MB)."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import pytest
from support.measured import Measured, run_measured

pytestmark = pytest.mark.hostile

PEAK_MIB = 200


def _spec(project: Path, body: str) -> None:
    (project / "vinci.yaml").write_text("spec-version: v1\nlayers:\n" + body)


def _build(project: Path) -> Measured:
    run = run_measured("build", "--cache-dir", "cache", "-q", "-o", "oci:out", cwd=project)
    assert run.returncode == 0, run.stderr
    assert run.peak_mib < PEAK_MIB
    return run


def _layer_tar(layout: Path) -> bytes:
    """The uncompressed tar of the only layer of the image in `layout`."""
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((layout / "blobs" / "sha256" / digest).read_bytes())
    layer = manifest["layers"][0]["digest"].split(":")[1]
    return zlib.decompress((layout / "blobs" / "sha256" / layer).read_bytes(), 31)


def test_names_that_are_not_utf8_are_kept_byte_for_byte(tmp_path: Path) -> None:
    """Finding 15: such a name was an internal error (UnicodeEncodeError). It is written as
    its bytes: in the USTAR name field where it fits, else in a PAX record marked
    hdrcharset=BINARY."""
    src = tmp_path / "src"
    src.mkdir()
    short = b"caf\xe9.txt"
    long = b"\xff" * 120
    (src / os.fsdecode(short)).write_bytes(b"short\n")
    (src / os.fsdecode(long)).write_bytes(b"long\n")
    _spec(tmp_path, "  - directory: {path: /data, source: ./src}\n")
    first = _build(tmp_path)
    tar = _layer_tar(tmp_path / "out")
    assert b"data/" + short + b"\0" in tar
    assert b"hdrcharset=BINARY\n" in tar
    assert b" path=data/" + long + b"\n" in tar
    # Reproducible as any other name: the same bytes again, from the cache and without it.
    assert _build(tmp_path).stdout == first.stdout
    again = run_measured("build", "--cache-dir", "fresh", "-q", "-o", "oci:out2", cwd=tmp_path)
    assert again.stdout == first.stdout
    listed = run_measured("inspect", "out", "--layer", "0", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "/data/caf\\xe9.txt" in listed.stdout


def _deep_tree(root: Path, depth: int) -> None:
    """`depth` nested directories with a file at the bottom. os.makedirs recurses once per
    level, so the tree is made one mkdir at a time, each relative to the last."""
    root.mkdir()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            below = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = below
        leaf = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, b"bottom\n")
        os.close(leaf)
    finally:
        os.close(fd)


def _remove_deep_tree(root: Path) -> None:
    """Remove what _deep_tree made, bottom up: shutil.rmtree (and so pytest's clean-up of old
    temporary directories) recurses once per level too."""
    path = root
    depth = 0
    while (path / "d").is_dir():
        path, depth = path / "d", depth + 1
    (path / "leaf").unlink(missing_ok=True)
    for _ in range(depth + 1):
        path.rmdir()
        path = path.parent


def test_a_tree_1500_levels_deep_builds_and_lists(tmp_path: Path) -> None:
    """Finding 15: a directory tree deeper than Python's recursion limit was an internal
    error (RecursionError). The walk, the tar and the listing are iterative."""
    _deep_tree(tmp_path / "src", 1500)
    try:
        _spec(tmp_path, "  - directory: {path: /data, source: ./src}\n")
        _build(tmp_path)
        for target in ("vinci.yaml", "out"):
            args = ["inspect", target, "--cache-dir", "cache", "--layer", "0", "--filter", "leaf"]
            listed = run_measured(*args, cwd=tmp_path)
            assert listed.returncode == 0, listed.stderr
            assert "/d/d/leaf" in listed.stdout.splitlines()[-1]
            assert listed.peak_mib < PEAK_MIB
    finally:
        _remove_deep_tree(tmp_path / "src")


def test_problems_are_capped_at_50(tmp_path: Path) -> None:
    """Finding 16: a spec with a thousand problems printed all of them."""
    layers = "".join(f"  - file: {{path: /f{i}, mode: 0999, contents: x}}\n" for i in range(1000))
    _spec(tmp_path, layers)
    run = run_measured("validate", cwd=tmp_path)
    assert run.returncode == 2
    lines = run.stderr.splitlines()
    assert len(lines) == 51
    assert "layers[49].file.mode: 0999 is not a valid mode" in lines[49]
    assert lines[50].endswith(": and 950 more problems")


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    """Finding 16: 10 KiB of aliases (1,000 layers of 1,000 items) took 23 s and printed
    198 MB of errors. Aliases may add at most 100,000 values; this one is refused before
    anything reads it, in one line."""
    item = "&i {file: {path: /a, contents: x}}"
    combined = "&c {combined: [" + item + ", " + ", ".join(["*i"] * 999) + "]}"
    layers = "[" + combined + ", " + ", ".join(["*c"] * 999) + "]"
    (tmp_path / "vinci.yaml").write_text(f"spec-version: v1\nlayers: {layers}\n")
    assert (tmp_path / "vinci.yaml").stat().st_size < 10 << 10
    run = run_measured("validate", cwd=tmp_path, timeout=10)
    assert run.returncode == 2
    line = run.one_line_error()
    assert line.startswith("vinci.yaml:2:9: YAML aliases (*name) expand this to"), line
    assert run.peak_mib < PEAK_MIB


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    (tmp_path / "vinci.yaml").write_text("spec-version: v1\nlayers: &l [*l]\n")
    run = run_measured("validate", cwd=tmp_path, timeout=10)
    assert run.returncode == 2
    assert "refers to a node containing it" in run.one_line_error()
