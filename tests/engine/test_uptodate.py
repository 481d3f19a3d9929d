"""The up-to-date check (engine/cli/uptodate.py): a rebuild that would change nothing is answered
from the stamp without building, and every change to what the image depends on, or
to what the output and cache hold, sends the build down the full path, whose digest always
equals a cold build's in a fresh cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from test_build import TREE_DIGEST
from trees import make_tree

OLD = 1_500_000_000  # sources dated long before the build: their stat data can be trusted

# Runs `vinci ARGS` as the `vinci` command does and says which path answered: "full" if the
# one build path (engine.build) ran, "stamp" if the up-to-date check answered without it; and
# which entries of the spec's directory were walked ("scanned": os.scandir, as the planner
# lists a directory) or had a file opened below them ("opened"), by their first name there.
PROBE = """
import json, os, sys
root = os.path.dirname(os.path.abspath(sys.argv[2]))
scanned, opened = set(), set()
def hook(event, args):
    if event in ("os.scandir", "open") and args and isinstance(args[0], (str, bytes)):
        path = os.path.abspath(os.fsdecode(args[0]))
        if path.startswith(root + os.sep):
            first = path[len(root) + 1 :].split(os.sep)[0]
            (scanned if event == "os.scandir" else opened).add(first)
sys.addaudithook(hook)
import engine.builder.run as run
built = []
def counted(*args, **kwargs):
    built.append(1)
    return build_spec(*args, **kwargs)
build_spec, run.build_spec = run.build_spec, counted
from engine.cli.main import main
code = main(sys.argv[1:])
probe = {"code": code, "path": "full" if built else "stamp"}
probe |= {"scanned": sorted(scanned), "opened": sorted(opened)}
print(json.dumps(probe), file=sys.stderr)
sys.exit(code)
"""


def _age(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.utime(os.path.join(dirpath, name), (OLD, OLD), follow_symlinks=False)


def _build(
    spec: Path, cache: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[str, str]:
    """(digest, "stamp" | "full") of `vinci build SPEC ARGS`."""
    proc, probe = _probe(spec, cache, *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1], probe["path"]


def _probe(
    spec: Path | str,
    cache: Path,
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`vinci build SPEC ARGS` as run, and what PROBE says of it."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "build", str(spec), *args],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], "HOME": str(cache.parent), "LANG": "C.UTF-8"}
        | {"VINCI_CACHE_DIR": str(cache)}
        | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, json.loads(proc.stderr.strip().splitlines()[-1])


def _cold(spec: Path, tmp: Path) -> str:
    """The digest a cold build in a fresh cache gives (the ground truth for any change)."""
    fresh = tmp / f"fresh-{len(list(tmp.glob('fresh-*')))}"
    return _build(spec, fresh, "-o", f"oci:{fresh}/out")[0]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    spec = make_tree(tmp_path / "src")
    (spec.parent / "tool-link").symlink_to("tool")
    spec.write_text(spec.read_text().replace("source: ./tool}", "source: ./tool-link}"))
    _age(spec.parent)
    return spec


def test_an_unchanged_rebuild_is_answered_from_the_stamp(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _build(tree, cache) == (TREE_DIGEST, "full")
    assert _build(tree, cache) == (TREE_DIGEST, "stamp")
    assert _build(tree, cache, "-q", "--jobs", "1") == (TREE_DIGEST, "stamp")
    # Options the check does not know, and --replan, always take the full path.
    assert _build(tree, cache, "--replan") == (TREE_DIGEST, "full")
    assert _build(tree, cache, "--jobs=4", "-q") == (TREE_DIGEST, "stamp")


def _edit_same_size(path: Path) -> None:
    """New content of the same size with the old mtime back: only ctime tells."""
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    os.utime(path, (OLD, OLD))


def _retarget(link: Path, target: str) -> None:
    link.unlink()
    link.symlink_to(target)
    os.utime(link, (OLD, OLD), follow_symlinks=False)


CHANGES: dict[str, Callable[[Path], None]] = {
    "content, same size and mtime": lambda s: _edit_same_size(s.parent / "app/index.html"),
    "content of a file source": lambda s: _edit_same_size(s.parent / "big.bin"),
    "touched (same content)": lambda s: os.utime(s.parent / "app/bin/run.sh", (OLD + 9, OLD + 9)),
    "mode": lambda s: os.chmod(s.parent / "app/index.html", 0o755),
    "new file, deep": lambda s: (s.parent / "app/static/new.txt").write_text("new\n"),
    "new excluded file": lambda s: (s.parent / "app/other.tmp").write_text("x\n"),
    "removed file": lambda s: (s.parent / "app/static/empty.css").unlink(),
    "link in the tree retargeted": lambda s: _retarget(
        s.parent / "app/static/current", "empty.css"
    ),
    "file source's link retargeted": lambda s: _retarget(s.parent / "tool-link", "big.bin"),
    "spec edited": lambda s: s.write_text(s.read_text().replace("kind: test", "kind: other")),
    "spec reformatted": lambda s: s.write_text(s.read_text() + "\n# a comment\n"),
    "a directory source replaced": lambda s: (
        shutil.move(s.parent / "app", s.parent / "app-old"),
        shutil.copytree(s.parent / "app-old", s.parent / "app", symlinks=True),
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_every_input_change_takes_the_full_path(tree: Path, tmp_path: Path, change: str) -> None:
    cache = tmp_path / "cache"
    _build(tree, cache)
    assert _build(tree, cache)[1] == "stamp"
    CHANGES[change](tree)
    digest, path = _build(tree, cache)
    assert path == "full"
    assert digest == _cold(tree, tmp_path)


OUTPUT_CHANGES: dict[str, Callable[[Path, Path], None]] = {
    "index.json edited": lambda out, cache: (out / "index.json").write_text("{}"),
    "output removed": lambda out, cache: shutil.rmtree(out),
    "blob removed": lambda out, cache: next((out / "blobs/sha256").iterdir()).unlink(),
    "blob truncated": lambda out, cache: os.truncate(
        max((out / "blobs/sha256").iterdir(), key=lambda p: p.stat().st_size), 10
    ),
    "stray blob": lambda out, cache: (out / "blobs/sha256" / ("0" * 64)).write_text("x"),
    "cache blob removed": lambda out, cache: max(
        (cache / "v1/blobs/sha256").iterdir(), key=lambda p: p.stat().st_size
    ).unlink(),
    "layer records removed": lambda out, cache: shutil.rmtree(cache / "v1/layers"),
    "stamp corrupted": lambda out, cache: [
        p.write_bytes(b"\x00garbage") for p in (cache / "v1/stamps").iterdir()
    ],
}


@pytest.mark.parametrize("change", list(OUTPUT_CHANGES))
def test_output_and_cache_damage_takes_the_full_path(
    tree: Path, tmp_path: Path, change: str
) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    _build(tree, cache, "-o", f"oci:{out}")
    assert _build(tree, cache, "-o", f"oci:{out}")[1] == "stamp"
    OUTPUT_CHANGES[change](out, cache)
    assert _build(tree, cache, "-o", f"oci:{out}") == (TREE_DIGEST, "full")
    # The full build repaired what it found and stamped it again.
    assert _build(tree, cache, "-o", f"oci:{out}") == (TREE_DIGEST, "stamp")
    subprocess.run(
        ["umoci", "unpack", "--rootless", "--image", f"{out}:1", str(tmp_path / "b")],
        check=True,
        capture_output=True,
    )


def test_options_that_choose_the_bytes_have_their_own_stamps(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _build(tree, cache)
    variants: list[tuple[tuple[str, ...], dict[str, str]]] = [
        (("--compression", "zstd"), {}),
        (("--compression-level", "3"), {}),
        (("--source-date-epoch", "1700000000"), {}),
        ((), {"SOURCE_DATE_EPOCH": "1600000000"}),
        (("-o", f"oci-archive:{tmp_path}/image.tar"), {}),
    ]
    for args, env in variants:
        digest, path = _build(tree, cache, *args, env=env)
        assert path == "full", args
        assert _build(tree, cache, *args, env=env) == (digest, "stamp"), args
    assert _build(tree, cache, "--compression", "zstd")[0] != TREE_DIGEST
    # Those builds rewrote the default output, so the first stamp no longer holds there.
    assert _build(tree, cache) == (TREE_DIGEST, "full")
    assert _build(tree, cache) == (TREE_DIGEST, "stamp")
    # The archive itself is checked: rewritten, it is rebuilt.
    (tmp_path / "image.tar").write_bytes(b"not an archive")
    assert _build(tree, cache, "-o", f"oci-archive:{tmp_path}/image.tar")[1] == "full"


def test_another_module_path_has_its_own_stamp(tree: Path, tmp_path: Path) -> None:
    """The stamp names the code by path: code found elsewhere (another checkout, another
    environment's isal) must not be vouched for by it."""
    cache = tmp_path / "cache"
    _build(tree, cache)
    assert _build(tree, cache)[1] == "stamp"
    elsewhere = {"PYTHONPATH": str(tmp_path / "other-site-packages")}
    assert _build(tree, cache, env=elsewhere) == (TREE_DIGEST, "full")
    assert _build(tree, cache, env=elsewhere)[1] == "stamp"


def test_a_lock_appearing_takes_the_full_path(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _build(tree, cache)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "VINCI_CACHE_DIR": str(cache)}
    subprocess.run(
        [sys.executable, "-m", "engine.cli", "lock", str(tree)], cwd=REPO, env=env, check=True
    )
    assert _build(tree, cache) == (TREE_DIGEST, "full")
    assert _build(tree, cache) == (TREE_DIGEST, "stamp")
    assert _build(tree, cache, "--no-lock") == (TREE_DIGEST, "full")


def test_no_stamp_for_racy_sources_or_faults(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    # Just written: a change within the same timestamp tick could go unseen, so no stamp.
    (tree.parent / "app/fresh.txt").write_text("fresh\n")
    _build(tree, cache)
    assert _build(tree, cache)[1] == "full"
    _age(tree.parent)
    _build(tree, cache)
    assert _build(tree, cache)[1] == "stamp"
    # Test-only faults are never answered from a stamp.
    assert _build(tree, cache, env={"VINCI_TESTING": "1"})[1] == "full"


@pytest.mark.parametrize("kind", ["oci-archive", "oci"])
def test_local_imports_and_tar_layers_are_answered_from_the_stamp(
    tree: Path, tmp_path: Path, kind: str
) -> None:
    cache = tmp_path / "cache"
    (tmp_path / "proj").mkdir()
    base = tmp_path / "proj" / ("base.tar" if kind == "oci-archive" else "base.oci")
    _build(tree, cache, "-o", f"{kind}:{base}")
    spec = tmp_path / "proj" / "vinci.yaml"
    subprocess.run(
        ["tar", "-C", tree.parent / "app", "-cf", tmp_path / "proj/app.tar", "."], check=True
    )
    spec.write_text(f"spec-version: v1\nlayers:\n  - import: ./{base.name}\n  - tar: ./app.tar\n")
    _age(tmp_path / "proj")
    digest, path = _build(spec, cache)
    assert path == "full"
    assert _build(spec, cache) == (digest, "stamp")
    # Another image at the same path: the stamp no longer holds.
    _build(tree, cache, "-o", f"{kind}:{base}", "--source-date-epoch", "7")
    _age(tmp_path / "proj")
    changed, path = _build(spec, cache)
    assert path == "full" and changed != digest
    assert _build(spec, cache) == (changed, "stamp")
    # So does a changed tarball.
    subprocess.run(["tar", "-C", tree.parent, "-cf", tmp_path / "proj/app.tar", "."], check=True)
    _age(tmp_path / "proj")
    assert _build(spec, cache)[1] == "full"


def test_a_footprint_is_trusted_only_if_no_key_is_racy_or_too_big() -> None:
    from engine.builder.footprint import Footprint
    from engine.cache.statkey import RACY_NS

    now = 1_700_000_000 * 10**9

    def footprint(*keys: tuple[int, int, int, int]) -> Footprint:
        f = Footprint()
        for i, key in enumerate(keys):
            f.layer(i % 2).saw(f"/f{i}", key)
        return f

    old = (10, now - 10 * RACY_NS, 5, now - 10 * RACY_NS)
    assert footprint().trusted(now)
    assert footprint(old, old).trusted(now)
    assert not footprint(old, (10, now - RACY_NS // 2, 6, now)).trusted(now)  # just written
    assert not footprint(old, (10, now + RACY_NS, 6, now)).trusted(now)  # dated in the future
    assert not footprint(old, (10, old[1], 1 << 63, old[3])).trusted(now)  # no int64 holds it
    # Only the mtime decides raciness, as in git's index: a recent ctime (a chmod) does not.
    assert footprint((10, old[1], 7, now)).trusted(now)


# -- a change in some layers: the others are held, taken from their records unplanned --------

LAYERED = """\
spec-version: v1
layers:
  - directory: {path: /a, source: ./a}
  - directory: {path: /b, source: ./b}
  - directory: {path: /c, source: ./c}
"""
LAYER_DIRS = ("a", "b", "c")


@pytest.fixture(scope="module")
def layered_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three directory layers of a few files each (b with a subdirectory and a link)."""
    root = tmp_path_factory.mktemp("layered") / "src"
    for name in LAYER_DIRS:
        (root / name / "sub").mkdir(parents=True)
        (root / name / "one.txt").write_text(f"{name} one\n")
        (root / name / "sub" / "two.txt").write_text(f"{name} two\n" * 50)
    (root / "b" / "current").symlink_to("one.txt")
    (root / "vinci.yaml").write_text(LAYERED)
    _age(root)
    return root


@pytest.fixture
def layered(layered_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the three-layer tree (its spec's path), old mtimes kept."""
    shutil.copytree(layered_template, tmp_path / "src", symlinks=True)
    return tmp_path / "src" / "vinci.yaml"


def _append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)
    os.utime(path, (OLD + 1, OLD + 1))


def _rebuild(spec: Path, cache: Path, *args: str) -> tuple[str, dict[str, Any]]:
    """(stdout: the digest or --json's document, probe) of a rebuild that must succeed; the
    probe's "scanned" and "opened" name only the layers' source directories."""
    proc, probe = _probe(spec, cache, *args)
    assert proc.returncode == 0, proc.stderr
    for seen in ("scanned", "opened"):
        probe[seen] = [name for name in probe[seen] if name in LAYER_DIRS]
    return proc.stdout.strip(), probe


def test_a_change_in_one_layer_plans_only_that_layer(layered: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _build(layered, cache)
    records = list((cache / "v1/layers").iterdir())
    for record in records:
        os.utime(record, (OLD, OLD))
    _append(layered.parent / "b/sub/two.txt", "changed\n")
    digest, probe = _rebuild(layered, cache)
    assert digest == _cold(layered, tmp_path)
    # Only b was walked and read; a and c were taken from their records unplanned.
    assert probe["scanned"] == ["b"] and probe["opened"] == ["b"], probe
    # Their records were touched, as a cache hit touches them (what `vinci cache gc` sees);
    # b's old one was not used.
    assert sorted(r.stat().st_mtime > OLD for r in records) == [False, True, True]
    # The new stamp carried their footprints over: the next build is answered by it.
    again, probe = _rebuild(layered, cache)
    assert (again, probe["path"], probe["scanned"], probe["opened"]) == (digest, "stamp", [], [])


HELD_LAYER_CHANGES: dict[str, Callable[[Path], None]] = {
    "file added": lambda root: (root / "a/sub/new.txt").write_text("new\n"),
    "file removed": lambda root: (root / "a/one.txt").unlink(),
    "link retargeted": lambda root: _retarget(root / "b/current", "sub/two.txt"),
    "directory removed": lambda root: shutil.rmtree(root / "a/sub"),
}


@pytest.mark.parametrize("change", list(HELD_LAYER_CHANGES))
def test_a_change_in_another_layer_is_seen_too(layered: Path, tmp_path: Path, change: str) -> None:
    """c changes (so the stamp does not answer) and so does a or b, which must be planned."""
    cache = tmp_path / "cache"
    _build(layered, cache)
    _append(layered.parent / "c/one.txt", "changed\n")
    HELD_LAYER_CHANGES[change](layered.parent)
    changed = "b" if "link" in change else "a"
    digest, probe = _rebuild(layered, cache)
    assert probe["scanned"] == sorted([changed, "c"]), probe
    assert digest == _cold(layered, tmp_path)


def test_a_spec_edit_plans_every_layer(layered: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _build(layered, cache)
    layered.write_text(LAYERED + "# a comment\n")
    digest, probe = _rebuild(layered, cache)
    assert probe["scanned"] == list(LAYER_DIRS), probe
    assert digest == _cold(layered, tmp_path)


def test_a_held_layer_whose_record_is_gone_is_planned(layered: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _build(layered, cache)
    result = json.loads(_rebuild(layered, cache, "--json")[0])
    key_of_a = result["layers"][0]["cache_key"]
    (cache / "v1/layers" / f"{key_of_a}.json").unlink()
    _append(layered.parent / "c/one.txt", "changed\n")
    digest, probe = _rebuild(layered, cache)
    assert probe["scanned"] == ["a", "c"], probe
    assert digest == _cold(layered, tmp_path)


def test_json_of_held_layers_is_a_full_builds(layered: Path, tmp_path: Path) -> None:
    """`--json` is never answered by the stamp, but its unchanged layers are held: the JSON
    is what a build that plans every layer prints, the held layers cache hits."""
    cache = tmp_path / "cache"
    _build(layered, cache)
    _append(layered.parent / "b/one.txt", "changed\n")
    out, probe = _rebuild(layered, cache, "--json")
    assert probe["scanned"] == ["b"], probe
    held = json.loads(out)
    out, probe = _rebuild(layered, cache, "--json", "--replan")
    assert probe["scanned"] == list(LAYER_DIRS), probe
    planned = json.loads(out)

    def timeless(data: dict[str, Any]) -> dict[str, Any]:
        layers = [{k: v for k, v in layer.items() if k != "seconds"} for layer in data["layers"]]
        return {k: v for k, v in data.items() if k != "seconds"} | {"layers": layers}

    # The planned build found b cached too (the held build made it): all hits but b's first.
    assert [layer["cache_hit"] for layer in held["layers"]] == [True, False, True]
    held["layers"][1]["cache_hit"] = True
    assert timeless(held) == timeless(planned)
    # With nothing changed, every layer is held and nothing is walked.
    out, probe = _rebuild(layered, cache, "--json")
    assert (probe["path"], probe["scanned"], probe["opened"]) == ("full", [], []), probe
    assert timeless(json.loads(out)) == timeless(planned)


def test_held_layers_with_a_lock(layered: Path, tmp_path: Path) -> None:
    """A held layer is checked against vinci.lock as a planned one is."""
    cache = tmp_path / "cache"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "VINCI_CACHE_DIR": str(cache)}
    subprocess.run(
        [sys.executable, "-m", "engine.cli", "lock", str(layered)], cwd=REPO, env=env, check=True
    )
    _age(layered.parent)
    _build(layered, cache)
    _append(layered.parent / "c/one.txt", "changed\n")
    digest, probe = _rebuild(layered, cache)
    assert probe["scanned"] == ["c"], probe
    assert digest == _cold(layered, tmp_path)


def test_sboms_plan_every_layer(layered: Path, tmp_path: Path) -> None:
    """SBOMs list each layer's planned entries: asked for (here by the spec), no layer is
    held, and the documents are a full build's."""
    cache = tmp_path / "cache"
    layered.write_text(LAYERED + "sbom: [spdx]\n")
    _age(layered.parent)
    _build(layered, cache)
    _append(layered.parent / "c/one.txt", "changed\n")
    digest, probe = _rebuild(layered, cache)
    assert probe["scanned"] == list(LAYER_DIRS), probe
    assert digest == _cold(layered, tmp_path)
    sbom = (layered.parent / "vinci.oci.spdx.json").read_bytes()
    _rebuild(layered, cache, "--replan")
    assert (layered.parent / "vinci.oci.spdx.json").read_bytes() == sbom
