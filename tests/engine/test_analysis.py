"""What each layer does to the image (engine.analysis, `vinci inspect --layers`), from a real
build whose later layers shadow, remove (a whiteout) and wipe a directory (an opaque whiteout)
what the first one wrote: the marks, the merged image, the bytes hidden and who hides them,
the efficiency, the largest files and the origin text. The layout the build wrote, read back
from its blobs alone, says the same."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from conftest import VinciRunner

import engine
from engine import BuildOptions
from engine.analysis import ImageAnalysis, analyze_image, analyze_result, origin_text
from engine.inspection import ImageBlobs, image_info
from engine.sources.image import open_image

SPEC = """\
spec-version: v1
layers:
  - directory: {path: /opt, source: ./tree}
  - file: {path: /opt/a.txt, contents: "new\\n"}
  - tar: {source: ./top.tar, whiteouts: true}
"""


def _tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("analysis")
    (d / "vinci.yaml").write_text(SPEC)
    (d / "tree" / "sub").mkdir(parents=True)
    (d / "tree" / "a.txt").write_bytes(b"a" * 1000)
    (d / "tree" / "b.txt").write_bytes(b"b\n\n")
    (d / "tree" / "big.bin").write_bytes(b"\0" * 5000)
    (d / "tree" / "sub" / "c.txt").write_bytes(b"c" * 200)
    members = {"opt/.wh.big.bin": b"", "opt/sub/.wh..wh..opq": b"", "opt/sub/new.txt": b"newer!\n"}
    _tar(d / "top.tar", members)
    return d


@pytest.fixture(scope="module")
def built(project: Path) -> tuple[ImageAnalysis, ImageAnalysis]:
    """The analysis of the build (from its plans) and of the layout it wrote (its blobs)."""
    options = BuildOptions(jobs=1, cache_dir=project / "cache", output=f"oci:{project}/out.oci")
    result = engine.build(project / "vinci.yaml", options)
    from_build = analyze_result(result, result.store())
    opened = open_image(f"oci:{project}/out.oci")
    blobs = ImageBlobs(opened)
    try:
        from_layout = analyze_image(image_info(opened), blobs)
    finally:
        blobs.close()
    return from_build, from_layout


def marks(analysis: ImageAnalysis, layer: int) -> dict[str, str]:
    return {e.path: e.change for e in analysis.layers[layer].entries}


def test_each_layer_is_marked_against_the_layers_below(
    built: tuple[ImageAnalysis, ImageAnalysis],
) -> None:
    analysis, _ = built
    assert marks(analysis, 0) == {
        "/opt": "added",
        "/opt/a.txt": "added",
        "/opt/b.txt": "added",
        "/opt/big.bin": "added",
        "/opt/sub": "added",
        "/opt/sub/c.txt": "added",
    }
    assert marks(analysis, 1) == {"/opt/a.txt": "modified"}
    # A whiteout shows as what it removed (a 5000-byte file), the opaque one as itself.
    assert marks(analysis, 2) == {
        "/opt/big.bin": "removed",
        "/opt/sub/.wh..wh..opq": "removed",
        "/opt/sub/new.txt": "added",
    }
    removed = next(e for e in analysis.layers[2].entries if e.path == "/opt/big.bin")
    assert (removed.type, removed.size, removed.origin) == ("file", 5000, "layers[2].tar")
    counts = [(r.added, r.modified, r.removed) for r in analysis.layers]
    assert counts == [(6, 0, 0), (0, 1, 0), (1, 0, 2)]


def test_merged_image_and_the_bytes_later_layers_hide(
    built: tuple[ImageAnalysis, ImageAnalysis],
) -> None:
    analysis, _ = built
    assert [(e.path, e.layer) for e in analysis.merged] == [
        ("/opt", 0),
        ("/opt/a.txt", 1),
        ("/opt/b.txt", 0),
        ("/opt/sub", 0),
        ("/opt/sub/new.txt", 2),
    ]
    labels = analysis.labels()
    hidden = [(s.path, s.size, labels[s.layer], s.how, labels[s.by]) for s in analysis.shadowed]
    assert hidden == [
        ("/opt/big.bin", 5000, "layers[0].directory", "removed", "layers[2].tar"),
        ("/opt/a.txt", 1000, "layers[0].directory", "shadowed", "layers[1].file"),
        ("/opt/sub/c.txt", 200, "layers[0].directory", "removed", "layers[2].tar"),
    ]
    assert [r.shadowed_bytes for r in analysis.layers] == [6200, 0, 0]
    assert [r.removes_bytes for r in analysis.layers] == [0, 1000, 5200]
    total = 1000 + 3 + 5000 + 200 + 4 + 7
    assert (analysis.total_bytes, analysis.wasted_bytes) == (total, 6200)
    assert analysis.efficiency == pytest.approx(1 - 6200 / total)
    assert [(e.path, e.size) for e in analysis.largest(2)] == [
        ("/opt/sub/new.txt", 7),
        ("/opt/a.txt", 4),
    ]


def test_origin_names_the_spec_node_and_the_host_file(
    built: tuple[ImageAnalysis, ImageAnalysis],
) -> None:
    analysis, _ = built
    by_path = {e.path: e for e in analysis.merged}
    assert origin_text(by_path["/opt/b.txt"]) == "layers[0].directory ← ./tree/b.txt"
    assert origin_text(by_path["/opt/b.txt"], "layers[0].") == "directory ← ./tree/b.txt"
    assert origin_text(by_path["/opt/a.txt"]) == "layers[1].file"  # inline contents


def test_the_written_layout_says_the_same_from_its_blobs(
    built: tuple[ImageAnalysis, ImageAnalysis],
) -> None:
    from_build, from_layout = built
    for layer in range(3):
        assert marks(from_layout, layer) == marks(from_build, layer)
    assert [e.path for e in from_layout.merged] == [e.path for e in from_build.merged]
    assert from_layout.efficiency == from_build.efficiency
    # No spec behind a layout: the layer is named by its position.
    assert from_layout.layers[0].label == "image layer 0"


def test_cli_inspect_layers(project: Path, vinci: VinciRunner) -> None:
    cache = str(project / "cache")
    text = vinci("inspect", "--layers", "--cache-dir", cache, cwd=project).stdout
    assert "efficiency 0.2%: 6.1 KiB wasted (shadowed or removed) of 6.1 KiB" in text
    assert "/opt/big.bin  layers[0].directory, removed by layers[2].tar" in text
    assert "/opt/a.txt  layers[0].directory, shadowed by layers[1].file" in text
    assert "/opt/b.txt  layers[0].directory ← ./tree/b.txt" in text
    data = json.loads(
        vinci("inspect", "--layers", "--json", "--cache-dir", cache, cwd=project).stdout
    )
    assert data["wasted_bytes"] == 6200
    assert [(x["added"], x["modified"], x["removed"]) for x in data["layers"]] == [
        (6, 0, 0),
        (0, 1, 0),
        (1, 0, 2),
    ]
    bad = vinci(
        "inspect", "--layers", "--layer", "0", "--cache-dir", cache, cwd=project, check=False
    )
    assert bad.returncode == 2 and "leave out --layer" in bad.stderr
