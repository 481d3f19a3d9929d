"""The cache: unchanged sources are never read again, a killed build leaves nothing
half-written, corruption is found, gc keeps what recent builds use, and concurrent builds
can share one cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import REPO, VinciRunner
from test_build import TREE_DIGEST
from trees import make_tree

# Runs the CLI in-process with an audit hook that records every file opened under SRC.
# Python raises the "open" audit event for open() and os.open() alike, so no read of a
# source's contents can bypass it.
AUDITED_BUILD = textwrap.dedent(
    """
    import os, sys
    src, log = sys.argv[1], sys.argv[2]
    opened = []
    def hook(event, args):
        if event == "open" and isinstance(args[0], (str, bytes)):
            path = os.fsdecode(args[0])
            if path.startswith(src) and not path.endswith("vinci.yaml"):
                opened.append(path)
    sys.addaudithook(hook)
    from engine.cli.main import main
    code = main(sys.argv[3:])
    with open(log, "w") as f:
        f.write("\\n".join(opened))
    sys.exit(code)
    """
)


def _audited(spec: Path, cache: Path, log: Path) -> tuple[str, list[str]]:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            AUDITED_BUILD,
            str(spec.parent),
            str(log),
            "build",
            str(spec),
            "-o",
            f"oci:{spec.parent.parent / 'out.oci'}",
        ],
        cwd=REPO,
        env={**os.environ, "VINCI_CACHE_DIR": str(cache)},
        capture_output=True,
        text=True,
        check=True,
    )
    opened = [p for p in log.read_text().splitlines() if p]
    return proc.stdout.strip().splitlines()[-1], opened


def _age(root: Path) -> None:
    """Make the tree's mtimes old, as a checkout's are after a while (fresh ones are 'racy'
    and are hashed again, on purpose)."""
    for path in root.rglob("*"):
        if not path.is_symlink():
            os.utime(path, (1_600_000_000, 1_600_000_000))


def test_second_build_reads_no_source_contents(tmp_path: Path) -> None:
    spec = make_tree(tmp_path / "src")
    _age(spec.parent)
    cache = tmp_path / "cache"
    digest1, opened1 = _audited(spec, cache, tmp_path / "log1")
    # The probe works: the first build opens the sources.
    assert any(p.endswith("big.bin") for p in opened1)
    assert any(p.endswith("index.html") for p in opened1)
    digest2, opened2 = _audited(spec, cache, tmp_path / "log2")
    assert opened2 == []
    assert digest1 == digest2 == TREE_DIGEST


def test_changed_file_is_rehashed_and_only_its_layer_rebuilt(
    tmp_path: Path, vinci: VinciRunner
) -> None:
    spec = make_tree(tmp_path / "src")
    _age(spec.parent)
    env = {"VINCI_CACHE_DIR": str(tmp_path / "cache")}
    vinci("build", spec, "-o", f"oci:{tmp_path}/o", env=env)
    (spec.parent / "app/index.html").write_bytes(b"<h1>changed</h1>\n")
    result = json.loads(vinci("build", spec, "--json", "-o", f"oci:{tmp_path}/o", env=env).stdout)
    assert [layer["cache_hit"] for layer in result["layers"]] == [False, True, True]
    assert result["manifest_digest"] != TREE_DIGEST


def test_verify_finds_corruption(tmp_path: Path, vinci: VinciRunner) -> None:
    spec = make_tree(tmp_path / "src")
    cache = tmp_path / "cache"
    env = {"VINCI_CACHE_DIR": str(cache)}
    vinci("build", spec, "-o", f"oci:{tmp_path}/o", env=env)
    ok = vinci("cache", "verify", env=env)
    assert "ok" in ok.stdout
    blob = max((cache / "v1/blobs/sha256").iterdir(), key=lambda p: p.stat().st_size)
    with open(blob, "r+b") as f:
        f.seek(1000)
        f.write(b"\xff\xfe")
    bad = vinci("cache", "verify", env=env, check=False)
    assert bad.returncode == 1
    assert f"blob sha256:{blob.name} is corrupt" in bad.stdout
    # A corrupt blob is not trusted: --remove deletes it (and the records naming it), and the
    # next build rebuilds the layer.
    fixed = vinci("cache", "verify", "--remove", "--json", env=env, check=False)
    removed = json.loads(fixed.stdout)
    assert removed["corrupt"] == [f"sha256:{blob.name}"]
    assert removed["removed"]["blobs"] == 1 and removed["removed"]["records"] == 1
    assert not blob.exists()
    again = vinci("build", spec, "-o", f"oci:{tmp_path}/o", env=env)
    assert again.digest == TREE_DIGEST
    assert "ok" in vinci("cache", "verify", env=env).stdout


def _written(pid: int) -> int:
    """How many bytes the process has written so far (its write calls' total)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


@pytest.mark.slow
def test_sigkill_mid_layer_leaves_cache_clean(tmp_path: Path, vinci: VinciRunner) -> None:
    spec = make_tree(tmp_path / "src", big_size=768 * 2**20)
    _age(spec.parent)
    cache = tmp_path / "cache"
    env = {**os.environ, "VINCI_CACHE_DIR": str(cache)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "build",
            str(spec),
            "-o",
            f"oci:{tmp_path}/o",
            "--jobs",
            "1",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # The stat memo of big.bin is saved when hashing ends and compression starts; then wait
    # until the build has written 8 MiB more (the kernel's count of the bytes it wrote), so
    # the kill lands while the big layer is being compressed into the cache.
    memo_dir = cache / "v1/memo"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if memo_dir.is_dir() and len(list(memo_dir.glob("*.json"))) >= 3:
            break
        time.sleep(0.01)
    start = _written(proc.pid)
    while time.monotonic() < deadline and _written(proc.pid) < start + (8 << 20):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    layer_records = list((cache / "v1/layers").glob("*.json"))
    assert len(layer_records) < 3, "the build finished before the kill: make the input bigger"
    leftovers = [p.name for p in (cache / "v1/blobs/sha256").iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert vinci("cache", "verify", env={"VINCI_CACHE_DIR": str(cache)}).returncode == 0
    again = vinci(
        "build", spec, "--json", "-o", f"oci:{tmp_path}/o", env={"VINCI_CACHE_DIR": str(cache)}
    )
    fresh = vinci(
        "build",
        spec,
        "--json",
        "-o",
        f"oci:{tmp_path}/o2",
        env={"VINCI_CACHE_DIR": str(tmp_path / "fresh")},
    )
    assert (
        json.loads(again.stdout)["manifest_digest"] == json.loads(fresh.stdout)["manifest_digest"]
    )


def test_concurrent_builds_share_one_cache(tmp_path: Path, vinci: VinciRunner) -> None:
    specs = [make_tree(tmp_path / f"src{i}", order_seed=i) for i in range(3)]
    env = {"VINCI_CACHE_DIR": str(tmp_path / "shared")}
    with ThreadPoolExecutor(3) as pool:
        runs = list(
            pool.map(lambda s: vinci("build", s, "-o", f"oci:{s.parent}/o", env=env), specs)
        )
    digests = [r.digest for r in runs]
    if set(digests) != {TREE_DIGEST}:
        # Seen once under CI load and not reproduced since: make a recurrence explain itself.
        good = [s for s, d in zip(specs, digests, strict=True) if d == TREE_DIGEST]
        bad = [s for s, d in zip(specs, digests, strict=True) if d != TREE_DIGEST]
        ref = good[0] if good else make_tree(tmp_path / "ref")
        why = vinci("diff", ref, f"oci:{bad[0].parent}/o", env=env, check=False)
        raise AssertionError(f"digests {digests}; vinci diff:\n{why.stdout}{why.stderr}")
    assert vinci("cache", "verify", env=env).returncode == 0


def test_gc_keeps_recent_builds_and_honours_budget(tmp_path: Path, vinci: VinciRunner) -> None:
    spec = make_tree(tmp_path / "src")
    env = {"VINCI_CACHE_DIR": str(tmp_path / "cache")}
    vinci("build", spec, "-o", f"oci:{tmp_path}/o", env=env)
    (spec.parent / "big.bin").write_bytes(b"smaller now\n")
    vinci("build", spec, "-o", f"oci:{tmp_path}/o", env=env)
    before = json.loads(vinci("cache", "ls", "--json", env=env).stdout)
    # As if every blob had been pushed: each gets an origin record (sources/<hex>.json).
    cache = tmp_path / "cache" / "v1"
    for blob in (cache / "blobs/sha256").iterdir():
        origin = {"sources": [{"registry": "127.0.0.1:5000", "repository": "t"}]}
        (cache / "sources" / f"{blob.name}.json").write_text(json.dumps(origin))
    kept = json.loads(vinci("cache", "gc", "--json", env=env).stdout)
    # Everything was used within the last 30 days: nothing goes.
    assert kept["removed_blobs"] == 0
    # With no age allowance only the newest build of each spec is kept: the old big layer,
    # config and manifest go, and the current image still builds entirely from the cache.
    # --dry-run says what would go and removes nothing; the gc then frees exactly that.
    dry = vinci("cache", "gc", "--keep-days", "0", "--dry-run", "--json", env=env).stdout
    preview = json.loads(dry)
    assert len(json.loads(vinci("cache", "ls", "--json", env=env).stdout)) == len(before)
    gone = json.loads(vinci("cache", "gc", "--keep-days", "0", "--json", env=env).stdout)
    assert (preview["removed_blobs"], preview["freed_bytes"]) == (
        gone["removed_blobs"],
        gone["freed_bytes"],
    )
    assert gone["removed_blobs"] == 3 and gone["freed_bytes"] > 700_000
    after = json.loads(vinci("cache", "ls", "--json", env=env).stdout)
    assert len(after) < len(before)
    # Origin records and member tables went with their blobs, and only with them; every
    # layer's slot names a blob still here.
    blobs = {p.name for p in (cache / "blobs/sha256").iterdir()}
    assert {p.stem for p in (cache / "sources").glob("*.json")} == blobs
    tables = {p.name for p in (cache / "members").iterdir()}
    assert tables and tables <= blobs
    assert {p.read_text() for p in (cache / "slots").iterdir()} <= blobs
    result = json.loads(vinci("build", spec, "--json", "-o", f"oci:{tmp_path}/o", env=env).stdout)
    assert all(layer["cache_hit"] for layer in result["layers"])
    assert vinci("cache", "verify", env=env).returncode == 0
    # A budget smaller than the current image evicts unpinned records only: still buildable.
    vinci("cache", "gc", "--keep-days", "0", "--max-size", "1K", env=env)
    # Options that do not parse: one line, exit 2.
    for option, value in (("--max-size", "5X"), ("--keep-days", "-1")):
        bad = vinci("cache", "gc", option, value, env=env, check=False)
        assert bad.returncode == 2 and f"{value!r} is not a" in bad.stderr
    again = json.loads(vinci("build", spec, "--json", "-o", f"oci:{tmp_path}/o", env=env).stdout)
    assert again["manifest_digest"] == result["manifest_digest"]


def test_cache_dir_flag_and_env(tmp_path: Path, vinci: VinciRunner, hello: Path) -> None:
    flag = vinci(
        "cache",
        "path",
        "--cache-dir",
        str(tmp_path / "a"),
        env={"VINCI_CACHE_DIR": str(tmp_path / "b")},
    )
    assert flag.stdout.strip() == str(tmp_path / "a" / "v1")
    env = vinci("cache", "path", env={"VINCI_CACHE_DIR": str(tmp_path / "b")})
    assert env.stdout.strip() == str(tmp_path / "b" / "v1")
    default = vinci("cache", "path", env={"HOME": str(tmp_path / "home")})
    assert default.stdout.strip() == str(tmp_path / "home/.cache/vinci/v1")
