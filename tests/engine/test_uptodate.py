"""The up-to-date check (engine/uptodate.py): a rebuild that would change nothing is answered
from the stamp without loading the engine, and every change to what the image depends on, or
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
from support.verify import in_ci
from test_build import TREE_DIGEST
from trees import make_tree

OLD = 1_500_000_000  # sources dated long before the build: their stat data can be trusted

# Runs `vinci ARGS` as the `vinci` command does (engine.main) and says which path answered:
# the full build imports the command line; the up-to-date answer never does.
# "yaml" says whether pyyaml was loaded: a full build that takes the spec it parsed last time
# (engine/spec/plain.py) never loads it.
PROBE = """
import json, sys
from engine.main import main
code = main(sys.argv[1:])
path = "full" if "engine.cli" in sys.modules else "stamp"
print(json.dumps({"code": code, "path": path, "yaml": "yaml" in sys.modules}), file=sys.stderr)
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
        [sys.executable, "-m", "engine", "lock", str(tree)], cwd=REPO, env=env, check=True
    )
    assert _build(tree, cache) == (TREE_DIGEST, "full")
    assert _build(tree, cache) == (TREE_DIGEST, "stamp")
    assert _build(tree, cache, "--no-lock") == (TREE_DIGEST, "full")


def test_no_stamp_for_racy_sources_faults_or_local_imports(tree: Path, tmp_path: Path) -> None:
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


# Lists which directories the planner walked (os.scandir) during `vinci build ARGS`: the
# up-to-date check and a reused layer's check only ever list (os.listdir).
# The last line is the walked directories and whether a process was forked (engine/preflight).
WALKS = """
import json, os, sys
walked, forked = [], []
def hook(event, args):
    if event == "os.scandir" and args[0] is not None:
        walked.append(os.fsdecode(args[0]))
    if event == "os.fork":
        forked.append(os.getpid())
sys.addaudithook(hook)
from engine.main import main
code = main(sys.argv[1:])
print(json.dumps([walked, bool(forked)]), file=sys.stderr)
sys.exit(code)
"""

THREE = """\
spec-version: v1
image: example.com/vinci/three:1
layers:
  - directory: {path: /a, source: ./a}
  - directory: {path: /b, source: ./b}
  - directory: {path: /c, source: ./c, exclude: ["*.tmp"]}
"""


def _three(root: Path) -> Path:
    for name in "abc":
        for i in range(5):
            (root / name / "sub").mkdir(parents=True, exist_ok=True)
            (root / name / "sub" / f"{i}.txt").write_text(f"{name} {i}\n" * 50)
    spec = root / "vinci.yaml"
    spec.write_text(THREE)
    _age(root)
    return spec


def _walked(spec: Path, cache: Path, *args: str) -> tuple[str, set[str]]:
    """(digest, the spec's top directories the planner walked) of `vinci build --json`."""
    digest, tops, _ = _walk(spec, cache, "--json", *args)
    return digest, tops


def _walk(spec: Path, cache: Path, *args: str) -> tuple[str, set[str], bool]:
    """(digest, top directories walked, whether a child was forked) of `vinci build ARGS`."""
    proc = subprocess.run(
        [sys.executable, "-c", WALKS, "build", str(spec), *args],
        cwd=REPO,
        env={"PATH": os.environ["PATH"], "HOME": str(cache.parent), "VINCI_CACHE_DIR": str(cache)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    walked, forked = json.loads(proc.stderr.strip().splitlines()[-1])
    tops = {Path(w).relative_to(spec.parent).parts[0] for w in walked}
    if "--json" in args:
        digest = json.loads(proc.stdout)["manifest_digest"]
    else:
        digest = proc.stdout.strip().splitlines()[-1]
    return digest, tops, forked


def test_a_changed_build_plans_only_the_layers_whose_inputs_changed(tmp_path: Path) -> None:
    spec = _three(tmp_path / "src")
    cache = tmp_path / "cache"
    assert _walked(spec, cache)[1] == {"a", "b", "c"}
    # One file of b changes: a and c are taken from the last build without a walk.
    (spec.parent / "b/sub/3.txt").write_text("changed\n")
    os.utime(spec.parent / "b/sub/3.txt", (OLD, OLD))
    digest, walked = _walked(spec, cache)
    assert walked == {"b"}
    assert digest == _cold(spec, tmp_path)
    # Lines added above the layers move every position, not what any layer asks for.
    spec.write_text("# three layers\n\n" + spec.read_text())
    assert _walked(spec, cache) == (digest, set())
    # A layer whose node changes is planned again; so is every layer with --replan.
    spec.write_text(spec.read_text().replace('"*.tmp"', '"*.bak"'))
    assert _walked(spec, cache)[1] == {"c"}
    assert _walked(spec, cache, "--replan")[1] == {"a", "b", "c"}
    # A new file in a directory of an otherwise unchanged layer is seen by its listing.
    (spec.parent / "a/sub/new.txt").write_text("new\n")
    os.utime(spec.parent / "a/sub/new.txt", (OLD, OLD))
    digest, walked = _walked(spec, cache)
    assert walked == {"a"}
    assert digest == _cold(spec, tmp_path)


def test_large_unchanged_layers_are_checked_in_a_child_while_the_engine_loads(
    tmp_path: Path,
) -> None:
    """engine/preflight.py: with enough files to check, the verdicts on the unchanged layers
    come from a forked child, with and without --json, and the result is a cold build's."""
    spec = _three(tmp_path / "src")
    for name in "abc":
        for i in range(5, 300):
            (spec.parent / name / "sub" / f"{i}.txt").write_text(f"{name} {i}\n")
    _age(spec.parent)
    cache = tmp_path / "cache"
    assert _walk(spec, cache)[1] == {"a", "b", "c"}
    # Without --json the check itself looked at the layers up to the changed one; the child
    # checks the rest (two layers of 300 files: enough to fork for).
    for i, args in enumerate([("--json",), ()]):
        (spec.parent / "a/sub/3.txt").write_text(f"changed {i}\n")
        os.utime(spec.parent / "a/sub/3.txt", (OLD, OLD))
        digest, walked, forked = _walk(spec, cache, *args)
        assert (walked, forked) == ({"a"}, True)
        assert digest == _cold(spec, tmp_path)
    # Nothing changed: answered by the check itself, no child.
    assert _walk(spec, cache)[1:] == (set(), False)
    # With a lock the build matches layers by their tar bytes and asks for no verdict: no
    # child is forked to work them out.
    env = {"PATH": os.environ["PATH"], "HOME": str(cache.parent), "VINCI_CACHE_DIR": str(cache)}
    subprocess.run(
        [sys.executable, "-m", "engine", "lock", str(spec)], cwd=REPO, env=env, check=True
    )
    (spec.parent / "a/sub/3.txt").write_text("changed with a lock\n")
    os.utime(spec.parent / "a/sub/3.txt", (OLD, OLD))
    digest, _, forked = _walk(spec, cache, "--json")
    assert not forked
    assert digest == _cold(spec, tmp_path)


def test_a_changed_build_takes_the_spec_it_parsed_last_time(tree: Path, tmp_path: Path) -> None:
    """With the spec's bytes (and the code) unchanged, the full build after a failed check
    takes the spec as the last build parsed it (engine/spec/plain.py), without loading pyyaml,
    while a parse could not differ: same name, host paths still what the spec needs."""
    import marshal

    cache = tmp_path / "cache"
    assert _build(tree, cache)[1] == "full"
    source = tree.parent / "tool"  # a file layer's source (through tool-link)
    for i, args in enumerate([(), ("--json",)]):
        source.write_text(f"#!/bin/sh\necho {i}\n")
        os.utime(source, (OLD, OLD))
        proc, probe = _probe(tree, cache, *args)
        assert proc.returncode == 0, proc.stderr
        assert (probe["path"], probe["yaml"]) == ("full", False)
        digest = proc.stdout.strip().splitlines()[-1] if not args else None
        if digest is not None:
            assert digest == _cold(tree, tmp_path)
    # The code that parsed it still counts in the new stamp, though never loaded this time.
    (stamp,) = (cache / "v1" / "stamps").iterdir()
    code = [path for path, _ in marshal.loads(stamp.read_bytes())["code"]]
    assert any("/yaml/" in path for path in code)
    assert any(path.endswith("engine/spec/load.py") for path in code)
    # Named another way (relative, from the spec's directory): parsed again.
    source.write_text("#!/bin/sh\necho named\n")
    os.utime(source, (OLD, OLD))
    proc, probe = _probe(tree.name, cache, cwd=tree.parent)
    assert proc.returncode == 0, proc.stderr
    assert (probe["path"], probe["yaml"]) == ("full", True)
    # A file layer's source that became a directory: parsed again, and refused as a parse
    # refuses it, at the line and column that name it.
    source.unlink()
    source.mkdir()
    proc, probe = _probe(tree, cache)
    assert proc.returncode != 0 and probe["yaml"]
    assert "is a directory, not a regular file" in proc.stderr
    assert f"{tree}:" in proc.stderr


# What answering from a stamp loads, beyond what the interpreter had already loaded.
LOADS = """
import json, sys
before = set(sys.modules)
from engine.main import main
code = main(sys.argv[1:])
print(json.dumps(sorted(set(sys.modules) - before)), file=sys.stderr)
sys.exit(code)
"""


def test_an_up_to_date_answer_loads_nothing_heavy(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _build(tree, cache)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "VINCI_CACHE_DIR": str(cache)}
    proc = subprocess.run(
        [sys.executable, "-c", LOADS, "build", str(tree)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip() == TREE_DIGEST
    loaded = set(json.loads(proc.stderr.strip().splitlines()[-1]))
    # array registers itself with collections.abc (already loaded with `collections`).
    assert loaded <= {
        "__future__",
        "collections.abc",
        "engine",
        "engine.main",
        "engine.uptodate",
        "engine.preflight",
        "engine.buildopts",
        "engine.statkey",
        "binascii",
        "array",
    }, loaded


def test_the_installed_vinci_command_is_the_lean_launcher(tree: Path, tmp_path: Path) -> None:
    """`vinci` is engine/bin/vinci with its shebang pointed at this environment, not an
    installer's wrapper (which imports `re` before anything else)."""
    command = Path(sys.executable).with_name("vinci")
    if not command.is_file():
        reason = f"{command} is not installed (run .ci/setup)"
        if in_ci():
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    assert "import re" not in command.read_text()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "VINCI_CACHE_DIR": str(tmp_path / "c"),
    }
    for _ in range(2):  # a full build, then an up-to-date answer
        run = subprocess.run(
            [command, "build", tree, "-q"], env=env, capture_output=True, text=True, check=True
        )
        assert run.stdout.strip() == TREE_DIGEST
    version = subprocess.run([command, "--version"], env=env, capture_output=True, text=True)
    assert version.stdout.startswith("vinci ")


def test_a_footprint_is_trusted_only_if_no_key_is_racy_or_too_big() -> None:
    from engine.statkey import RACY_NS
    from engine.uptodate import Footprint

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
