"""`vinci diff` names the exact cause of each difference between two images: a file's content,
mode or owner, an env var, an added layer, a compression-only change; down to tar header
formats, mtimes and link targets for layers vinci did not write. Real builds through the CLI;
the tar-level cases read tarballs written by Python's tarfile (GNU, PAX, USTAR)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from conftest import VinciRunner
from support.registry import RegistryServer

from engine.compare.layers import compare_entries
from engine.tar.read import read_layer

SPEC = """\
spec-version: v1
image: example.com/test/diff:1
config:
  entrypoint: [/bin/app]
  env: {PATH: /bin, MODE: prod}
layers:
  - file: {path: /bin/app, source: ./app}
  - file: {path: /etc/message, mode: 0644, contents: "hello\\n"}
"""


def _spec(root: Path, name: str, text: str = SPEC) -> Path:
    d = root / name
    d.mkdir()
    (d / "app").write_bytes(b"#!/bin/sh\necho app\n" * 50)
    (d / "app").chmod(0o755)
    (d / "vinci.yaml").write_text(text)
    return d / "vinci.yaml"


def _layout(vinci: VinciRunner, spec: Path, cache: Path, *extra: str) -> Path:
    out = spec.parent.parent / f"{spec.parent.name}{'-'.join(('', *extra))}.oci"
    vinci("build", spec, "-o", f"oci:{out}", *extra, env={"VINCI_CACHE_DIR": str(cache)})
    return out


def _diff(vinci: VinciRunner, a: object, b: object, cache: Path, *extra: str) -> dict[str, Any]:
    run = vinci("diff", a, b, "--json", *extra, env={"VINCI_CACHE_DIR": str(cache)}, check=False)
    assert run.returncode in (0, 1), run.stderr
    data: dict[str, Any] = json.loads(run.stdout)
    assert run.returncode == (0 if data["identical"] else 1)
    return data


def _changed_layers(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [x for x in data["layers"] if x["change"] != "unchanged"]


def _file_causes(data: dict[str, Any]) -> dict[str, list[str]]:
    return {
        f["path"]: [c["cause"] for c in f["causes"]]
        for layer in data["layers"]
        for f in layer["files"]
        if f["change"] == "changed"
    }


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return _spec(tmp_path, "base")


@pytest.mark.parametrize(
    ("old", "new", "cause", "before", "after"),
    [
        ('contents: "hello\\n"', 'contents: "hullo\\n"', "content", "6 bytes", "6 bytes"),
        ("mode: 0644", "mode: 0600", "mode", "0644", "0600"),
        ("mode: 0644,", "mode: 0644, uid: 1000, gid: 50,", "owner", "0:0", "1000:50"),
    ],
    ids=["content", "mode", "owner"],
)
def test_a_changed_file_names_its_one_cause(
    tmp_path: Path,
    vinci: VinciRunner,
    base: Path,
    old: str,
    new: str,
    cause: str,
    before: str,
    after: str,
) -> None:
    other = _spec(tmp_path, "other", SPEC.replace(old, new))
    cache = tmp_path / "cache"
    data = _diff(vinci, base, other, cache)  # two specs, both built on the fly
    assert data["a"]["kind"] == data["b"]["kind"] == "spec"
    assert data["fields"] == []
    [layer] = _changed_layers(data)
    assert layer["change"] == "changed"
    assert layer["a"]["position"] == layer["b"]["position"] == 1
    [f] = layer["files"]
    assert f["path"] == "/etc/message"
    assert f["change"] == "changed"
    [c] = f["causes"]
    assert c["cause"] == cause
    assert before in c["before"] and after in c["after"]
    assert data["summary"] == [f"layer 1 changed: /etc/message changed ({cause})"]


def test_a_changed_env_var(tmp_path: Path, vinci: VinciRunner, base: Path) -> None:
    other = _spec(tmp_path, "other", SPEC.replace("MODE: prod", "MODE: debug"))
    cache = tmp_path / "cache"
    data = _diff(vinci, _layout(vinci, base, cache), _layout(vinci, other, cache), cache)
    assert data["a"]["kind"] == data["b"]["kind"] == "oci"
    assert data["fields"] == [
        {
            "document": "config",
            "field": "config.Env.MODE",
            "change": "changed",
            "before": "prod",
            "after": "debug",
        }
    ]
    assert _changed_layers(data) == []
    assert data["summary"] == ["config config.Env.MODE changed"]
    text = vinci("diff", base, other, env={"VINCI_CACHE_DIR": str(cache)}, check=False)
    assert text.returncode == 1
    assert '~ config.Env.MODE: "prod" -> "debug"' in text.stdout


def test_an_added_layer(tmp_path: Path, vinci: VinciRunner, base: Path) -> None:
    other = _spec(
        tmp_path,
        "other",
        SPEC.replace(
            "  - file: {path: /etc/message",
            '  - file: {path: /etc/motd, contents: "welcome\\n"}\n  - file: {path: /etc/message',
        ),
    )
    cache = tmp_path / "cache"
    data = _diff(vinci, base, other, cache)
    changes = [
        (x["change"], x["a"] and x["a"]["position"], x["b"]["position"]) for x in data["layers"]
    ]
    # The new layer sits between the two unchanged ones, which keep their diff_ids.
    assert changes == [("unchanged", 0, 0), ("added", None, 1), ("unchanged", 1, 2)]
    added = data["layers"][1]
    assert added["b"]["created_by"] == "vinci: file /etc/motd"
    assert [(f["path"], f["change"]) for f in added["files"]] == [("/etc/motd", "added")]
    assert "layer 1 added (vinci: file /etc/motd)" in data["summary"]


@pytest.mark.parametrize("codec", ["gzip-zlib", "zstd"])
def test_a_codec_only_change(tmp_path: Path, vinci: VinciRunner, base: Path, codec: str) -> None:
    cache = tmp_path / "cache"
    a = _layout(vinci, base, cache)
    b = _layout(vinci, base, cache, "--compression", codec)
    data = _diff(vinci, a, b, cache)
    assert data["fields"] == []  # the config is the same: diff_ids did not change
    assert {x["change"] for x in data["layers"]} == {"recompressed"}
    for layer in data["layers"]:
        assert layer["a"]["diff_id"] == layer["b"]["diff_id"]
        assert layer["a"]["digest"] != layer["b"]["digest"]
        assert layer["files"] == []
        causes = [c["cause"] for c in layer["compression"]]
        assert causes[-2:] == ["codec", "compressed bytes"]
        assert ("media type" in causes) == (codec == "zstd")
    # A spec names its codec by identity; the layout's codec is read from its gzip header.
    spec_side = _diff(vinci, base, b, cache)
    codec_cause = next(c for c in spec_side["layers"][0]["compression"] if c["cause"] == "codec")
    assert codec_cause["before"].startswith("gzip/libdeflate-members/")
    text = vinci("diff", a, b, env={"VINCI_CACHE_DIR": str(cache)}, check=False).stdout
    assert "recompressed" in text and "the tar bytes are identical" in text


def test_identical_images_and_every_input_kind(
    tmp_path: Path, vinci: VinciRunner, base: Path
) -> None:
    cache = tmp_path / "cache"
    layout = _layout(vinci, base, cache)
    archive = tmp_path / "base.tar"
    vinci("build", base, "-o", f"oci-archive:{archive}", env={"VINCI_CACHE_DIR": str(cache)})
    for a, b in [(base, layout), (f"spec:{base}", f"oci-archive:{archive}"), (archive, layout)]:
        data = _diff(vinci, a, b, cache)
        assert data["identical"] and data["summary"] == []
    run = vinci("diff", layout, f"oci:{layout}:1", env={"VINCI_CACHE_DIR": str(cache)})
    assert "identical: same manifest" in run.stdout


def test_diff_against_a_registry_image(
    tmp_path: Path, vinci: VinciRunner, base: Path, registry: RegistryServer
) -> None:
    env = {"VINCI_CACHE_DIR": str(tmp_path / "cache"), "DOCKER_CONFIG": str(tmp_path / "d")}
    ref = f"{registry.host}/diff/base:v1"
    vinci("build", base, "--push", "--image", f"{registry.host}/diff/base", "--tag", "v1", env=env)
    other = _spec(tmp_path, "other", SPEC.replace("mode: 0644", "mode: 0640"))
    # A fresh cache: the layers must come from the registry to be compared.
    env["VINCI_CACHE_DIR"] = str(tmp_path / "cache2")
    run = vinci("diff", ref, other, "--json", env=env, check=False)
    data = json.loads(run.stdout)
    assert data["a"]["kind"] == "registry"
    assert _file_causes(data) == {"/etc/message": ["mode"]}
    assert vinci("diff", ref, base, env=env).stdout.endswith("identical: same manifest\n")


# -- tar-level causes, on layers vinci did not write ------------------------------------------


def _tar(fmt: int, members: list[tuple[tarfile.TarInfo, bytes]]) -> io.BytesIO:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data else None)
    out.seek(0)
    return out


def _info(name: str, **kw: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(info, k, v)
    return info


def _compare(
    a: io.BytesIO, b: io.BytesIO
) -> tuple[dict[str, list[tuple[str, str, str]]], tuple[str, ...]]:
    ea, sa = read_layer(a)
    eb, sb = read_layer(b)
    changes, notes = compare_entries(ea, eb, sa, sb)
    return {f.path: [(c.what, c.before, c.after) for c in f.causes] for f in changes}, notes


def test_header_format_mtime_owner_names_and_link_target() -> None:
    long = "dir/" + "x" * 120
    a = _tar(
        tarfile.GNU_FORMAT,
        [
            (_info(long, size=2, mtime=0), b"ab"),
            (_info("owned", size=0, uname="", gname=""), b""),
            (_info("link", type=tarfile.SYMTYPE, linkname="old"), b""),
            (_info("t", size=0, mtime=0), b""),
        ],
    )
    b = _tar(
        tarfile.PAX_FORMAT,
        [
            (_info(long, size=2, mtime=0), b"ab"),
            (_info("owned", size=0, uname="root", gname="root"), b""),
            (_info("link", type=tarfile.SYMTYPE, linkname="new"), b""),
            (_info("t", size=0, mtime=1700000000), b""),
        ],
    )
    causes, _ = _compare(a, b)
    assert causes["/" + long] == [("header format", "gnu+gnu-longname", "ustar+pax (path)")]
    # tarfile writes every entry of a GNU archive with GNU magic, of a PAX one with USTAR's.
    assert [c[0] for c in causes["/owned"]] == ["owner names", "header format"]
    assert causes["/owned"][0][2] == "'root':'root'"
    assert causes["/link"][0] == ("link target", "'old'", "'new'")
    assert causes["/t"][:1] == [
        ("mtime", "0 (1970-01-01T00:00:00Z)", "1700000000 (2023-11-14T22:13:20Z)")
    ]


def test_entry_order_and_trailing_blocks_are_named() -> None:
    one, two = (_info("a", size=1), b"1"), (_info("b", size=1), b"2")
    causes, notes = _compare(
        _tar(tarfile.USTAR_FORMAT, [one, two]), _tar(tarfile.USTAR_FORMAT, [two, one])
    )
    assert causes == {}
    assert notes == ("entry order: entry 0 is /a in A, /b in B",)
    short = _tar(tarfile.USTAR_FORMAT, [one])
    padded = io.BytesIO(short.getvalue() + b"\0" * 4096)
    causes, notes = _compare(short, padded)
    assert causes == {} and len(notes) == 1 and notes[0].startswith("end of archive:")


def test_diff_results_for_the_workbench(tmp_path: Path, base: Path) -> None:
    """What the workbench shows after a rebuild: two BuildResults from one cache, no CLI."""
    from engine.builder.pool import Builder
    from engine.cache.store import BlobStore
    from engine.compare import diff_results
    from engine.spec.load import load_spec

    builder = Builder(BlobStore(tmp_path / "cache"))
    before = builder.build(load_spec(base))
    base.write_text(SPEC.replace("mode: 0644", "mode: 0600").replace("MODE: prod", "MODE: dev"))
    after = builder.build(load_spec(base))
    diff = diff_results(before, after, builder.store)
    assert diff.headline() == [
        "config config.Env.MODE changed",
        "layer 1 changed: /etc/message changed (mode)",
    ]
    assert diff_results(after, after, builder.store).identical


def test_text_paths_get_a_short_unified_diff(tmp_path: Path, base: Path) -> None:
    """A caller names the files whose changed text it wants as a diff (the workbench names
    inline `contents`); render_lines ties each line to what it describes."""
    from engine.builder.pool import Builder
    from engine.cache.store import BlobStore
    from engine.compare import diff_results, render, render_lines
    from engine.spec.load import load_spec

    builder = Builder(BlobStore(tmp_path / "cache"))
    before = builder.build(load_spec(base))
    base.write_text(SPEC.replace('"hello\\n"', '"hello\\nworld\\n"'))
    after = builder.build(load_spec(base))
    plain = diff_results(before, after, builder.store)
    assert all(not f.text_diff for x in plain.layers for f in x.files)
    diff = diff_results(before, after, builder.store, text_paths={"/etc/message"})
    (change,) = [f for x in diff.layers for f in x.files]
    assert change.text_diff == ("@@ -1 +1,2 @@", " hello", "+world")
    assert change.to_json()["text_diff"] == list(change.text_diff)
    lines = render_lines(diff, unchanged=False)
    assert [x.text[10:] for x in lines if x.kind == "diff"] == list(change.text_diff)
    assert all(x.file == change for x in lines if x.kind == "diff")
    assert "config keys" not in render(diff) and "layers\n" in render(diff)
