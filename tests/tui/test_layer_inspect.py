"""The headless half of the Details and Contents panes: engine.tar.read, engine.inspection and
`vinci inspect`. No Textual here: these must work, and be tested, without the UI."""

from __future__ import annotations

import gzip
import io
import json
import re
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from engine import load_spec
from engine.builder.pool import Builder
from engine.builder.result import BuildResult
from engine.builder.run import write_output
from engine.cache.store import BlobStore
from engine.cli.main import main
from engine.codec import get_codec
from engine.inspection import (
    ImageBlobs,
    build_tree,
    entries_from_blob,
    entries_from_plan,
    image_from_result,
    image_info,
    input_changes,
    layer_entries,
    matching_paths,
    read_layer_file,
    tree_rows,
)
from engine.oci.descriptor import Descriptor
from engine.oci.digest import Digest
from engine.output import default_output
from engine.sources.image import open_image
from engine.tar.compression import sniff_compression
from engine.tar.read import read_member

MODE = re.compile(r"^[-dlhcbpw?][-rwxsStT?]{9} ")


def build(project: Path, codec: str = "gzip") -> tuple[BuildResult, BlobStore]:
    store = BlobStore(project / f"cache-{codec}")
    result = Builder(store, get_codec(codec), jobs=1).build(load_spec(project / "vinci.yaml"))
    return result, store


@pytest.mark.parametrize("codec", ["gzip", "zstd", "none"])
def test_tar_listing_matches_the_plan(project: Path, codec: str) -> None:
    """Streaming a built layer's blob lists exactly what its plan says it wrote."""
    result, store = build(project, codec)
    image = image_from_result(result)
    for info, layer in zip(image.layers, result.layers, strict=True):
        assert layer.plan is not None
        assert info.compression == {"gzip": "gzip", "zstd": "zstd", "none": "none"}[codec]
        from_tar = entries_from_blob(store, info.descriptor)
        # The plan knows more than the tar says: the spec node, the host file, the digest.
        from_plan = [
            replace(e, origin="", source="", digest="") for e in entries_from_plan(layer.plan)
        ]
        assert from_tar == from_plan
        with store.open_blob(info.descriptor.digest) as raw:
            assert sniff_compression(raw.read(4)) == codec


def test_listing_an_imported_layer_needs_no_plan(project: Path) -> None:
    """Without a plan (imports), the files come from the blob, credited to the layer node."""
    result, store = build(project)
    info = image_from_result(result).layers[1]
    entries = layer_entries(store, info, plan=None)
    assert [e.path for e in entries][:2] == ["/srv/site", "/srv/site/about.html"]
    assert {e.origin for e in entries} == {"layers[1].directory"}


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name: str, kind: bytes, size: int = 0, **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


class _Blob:
    """One layer blob held in memory, where the inspection reads blobs from."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def open_blob(self, digest: Digest) -> io.BytesIO:
        return io.BytesIO(self.data)

    def read_blob(self, digest: Digest) -> bytes:
        return self.data


_DESCRIPTOR = Descriptor("application/vnd.oci.image.layer.v1.tar", Digest("0" * 64), 0)


def test_foreign_tar_entries_are_normalized() -> None:
    """Layers made by other tools: './' prefixes, devices, hardlinks, whiteouts, PAX names."""
    long_name = "./usr/share/" + "deep/" * 30 + "file.txt"
    data = _tar(
        [
            (_info("./", tarfile.DIRTYPE, mode=0o755), None),
            (_info("./etc/", tarfile.DIRTYPE, mode=0o755), None),
            (_info("./etc/hostname", tarfile.REGTYPE, 5, mode=0o644, uid=1, gid=2), b"host\n"),
            (_info("./etc/hn", tarfile.LNKTYPE, linkname="./etc/hostname"), None),
            (_info("./dev/console", tarfile.CHRTYPE, devmajor=5, devminor=1), None),
            (_info("./run/fifo", tarfile.FIFOTYPE), None),
            (_info("./var/.wh.cache", tarfile.REGTYPE), b""),
            (_info("./opt/.wh..wh..opq", tarfile.REGTYPE), b""),
            (_info(long_name, tarfile.REGTYPE, 3, mode=0o600), b"abc"),
            (_info("bin/sh", tarfile.SYMTYPE, linkname="busybox", mode=0o777), None),
        ]
    )
    entries = entries_from_blob(_Blob(gzip.compress(data)), _DESCRIPTOR)
    got = [(e.path, e.type, e.size, e.target) for e in entries]
    assert got == [
        ("/", "dir", 0, ""),
        ("/etc", "dir", 0, ""),
        ("/etc/hostname", "file", 5, ""),
        ("/etc/hn", "hardlink", 0, "/etc/hostname"),
        ("/dev/console", "char", 0, ""),
        ("/run/fifo", "fifo", 0, ""),
        ("/var/.wh.cache", "whiteout", 0, ""),
        ("/opt/.wh..wh..opq", "opaque", 0, ""),
        (long_name[1:], "file", 3, ""),
        ("/bin/sh", "symlink", 0, "busybox"),
    ]
    assert (entries[2].uid, entries[2].gid, entries[2].mode) == (1, 2, 0o644)
    # An uncompressed stream is read as it is.
    assert len(entries_from_blob(_Blob(data), _DESCRIPTOR)) == len(entries)


def test_read_member_text_binary_truncated_missing() -> None:
    data = _tar(
        [
            (_info("etc/motd", tarfile.REGTYPE, 12), b"hello world\n"),
            (_info("bin/tool", tarfile.REGTYPE, 7), b"\x7fELF\x02\x01\x00"),
            (_info("etc/motd", tarfile.REGTYPE, 6), b"later\n"),  # later entries win
        ]
    )
    found = read_member(io.BytesIO(data), "/etc/motd")
    assert found is not None and found.text == "later\n" and not found.truncated
    cut = read_member(io.BytesIO(data), "/etc/motd", limit=3)
    assert cut is not None and cut.data == b"lat" and cut.truncated and not cut.binary
    binary = read_member(io.BytesIO(data), "bin/tool")
    assert binary is not None and binary.binary and binary.text == ""
    assert read_member(io.BytesIO(data), "/nope") is None


def test_read_file_from_a_built_layer(project: Path) -> None:
    result, store = build(project)
    image = image_from_result(result)
    content = read_layer_file(store, image.layers[2].descriptor, "/etc/motd")
    assert content is not None and content.text == "welcome to the workbench\n"


def test_layout_and_build_agree(project: Path) -> None:
    result, store = build(project)
    target = default_output(result.spec.path)
    write_output(target, result, store)
    opened = open_image(f"oci:{target.path}")
    from_layout, blobs = image_info(opened), ImageBlobs(opened)
    from_build = image_from_result(result)
    assert from_layout.manifest.digest == from_build.manifest.digest
    assert [(i.descriptor, i.diff_id) for i in from_layout.layers] == [
        (i.descriptor, i.diff_id) for i in from_build.layers
    ]
    assert [i.summary for i in from_layout.layers] == [i.summary for i in from_build.layers]
    entries = entries_from_blob(blobs, from_layout.layers[1].descriptor)
    blobs.close()
    assert [e.path for e in entries] == [e.path for e in entries_from_plan(result.layers[1].plan)]  # type: ignore[arg-type]


def test_tree_order_by_size_and_filter(project: Path) -> None:
    result, _store = build(project)
    plan = result.layers[1].plan
    assert plan is not None
    root = build_tree(entries_from_plan(plan))
    by_name = [r.node.path for r in tree_rows(root, "name")]
    assert by_name == [
        "/srv",
        "/srv/site",
        "/srv/site/about.html",
        "/srv/site/assets",
        "/srv/site/assets/app.js",
        "/srv/site/assets/style.css",
        "/srv/site/index.html",
    ]
    # /srv is implied (vinci adds no parents): it has no entry of its own.
    assert root.children["srv"].entry is None
    by_size = [r.node.path for r in tree_rows(root, "size")]
    assert by_size[2:5] == [
        "/srv/site/assets",
        "/srv/site/assets/app.js",
        "/srv/site/assets/style.css",
    ]
    only = matching_paths(root, "CSS")
    assert [r.node.path for r in tree_rows(root, "name", only=only)] == [
        "/srv",
        "/srv/site",
        "/srv/site/assets",
        "/srv/site/assets/style.css",
    ]
    rows = list(tree_rows(root, "name", expanded=lambda p: p != "/srv/site/assets"))
    assert "/srv/site/assets/app.js" not in [r.node.path for r in rows]
    assert rows[-1].guides == "        └── "


def test_input_changes(project: Path) -> None:
    first, _ = build(project)
    (project / "site" / "about.html").write_text("<p>changed</p>\n")
    (project / "site" / "new.txt").write_text("new\n")
    (project / "site" / "index.html").unlink()
    second, _ = build(project)
    before, after = first.layers[1].plan, second.layers[1].plan
    assert before is not None and after is not None
    changes = [str(c) for c in input_changes(before, after)]
    assert changes[0].startswith("/srv/site/about.html: content ")
    assert changes[1:] == ["/srv/site/index.html: removed", "/srv/site/new.txt: added"]
    assert input_changes(None, after) == []
    assert input_changes(after, after) == []


def test_cli_inspect_spec_and_layer(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "vinci.yaml", "--cache-dir", "cache"]) == 0
    out = capsys.readouterr().out
    assert "manifest  sha256:" in out
    assert "layers[1].directory  directory /srv/site" in out
    assert main(["inspect", "--cache-dir", "cache", "--layer", "1", "--sort", "size"]) == 0
    lines = capsys.readouterr().out.splitlines()
    files = [line for line in lines if line.startswith("-rw")]
    assert files[0].split()[4] == "/srv/site/assets/app.js"
    assert all(line.endswith("layers[1].directory") for line in files)
    assert main(["inspect", "--cache-dir", "cache", "--layer", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(e["path"], e["type"], e["target"]) for e in data["entries"]] == [
        ("/etc/motd", "file", None),
        ("/srv/current", "symlink", "/srv/site"),
    ]
    assert data["entries"][0]["origin"] == "layers[2].combined[1].file"
    assert data["layer"]["cache_hit"] is True
    assert main(["inspect", "--cache-dir", "cache", "--layer", "2", "--cat", "/etc/motd"]) == 0
    assert capsys.readouterr().out == "welcome to the workbench\n"


def test_cli_inspect_layout(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "vinci.yaml", "--cache-dir", "cache", "-q"]) == 0
    digest = capsys.readouterr().out.strip()
    assert main(["inspect", "vinci.oci", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["manifest"]["digest"] == digest
    assert [layer["summary"] for layer in data["layers"]] == [
        "file /app/run.sh",
        "directory /srv/site",
        "combined (2 items)",
    ]
    assert main(["inspect", "vinci.oci", "--layer", "0"]) == 0
    out = capsys.readouterr().out
    assert "-rwxr-xr-x  0:0  40 B  /app/run.sh" in out
    assert main(["inspect", "vinci.oci", "--layer", "9"]) == 1
    assert "layer 9 does not exist" in capsys.readouterr().err
    assert main(["inspect", "vinci.oci", "--layer", "1", "--filter", "app"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[-1] for line in out.splitlines() if MODE.match(line)]
    # /srv has no entry of its own in the layer (vinci adds no parents), so it is not listed.
    assert listed == ["/srv/site", "/srv/site/assets", "/srv/site/assets/app.js"]


def test_headless_modules_never_import_textual() -> None:
    code = (
        "import sys, engine.cli.inspect, engine.inspection, engine.tar.read; "
        "sys.exit(any(m == 'textual' or m.startswith('textual.') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize("kind", ["oci-archive", "docker-archive"])
def test_cli_inspect_archives(project: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Archives are read the way an `import` reads them: same layers, same files."""
    out = f"{kind}:image.tar"
    assert main(["build", "vinci.yaml", "--cache-dir", "cache", "-q", "-o", out]) == 0
    capsys.readouterr()
    assert main(["inspect", "image.tar", "--layer", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [e["path"] for e in data["entries"]] == ["/etc/motd", "/srv/current"]
    assert main(["inspect", "image.tar", "--layer", "2", "--cat", "/etc/motd"]) == 0
    assert capsys.readouterr().out == "welcome to the workbench\n"
