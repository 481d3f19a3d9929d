"""The same spec and inputs give the same digest under every host perturbation we can make:
another checkout directory, file creation order, umask, timezone and locale, touched mtimes,
--jobs, cold vs warm cache, another (non-root) user. A negative control proves the check can
fail: a real input change (SOURCE_DATE_EPOCH) changes the digest."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from conftest import VinciRunner
from test_build import TREE_DIGEST
from trees import make_tree


def _build(vinci: VinciRunner, spec: Path, cache: Path, *extra: str, **kw: object) -> str:
    env = {"VINCI_CACHE_DIR": str(cache), **kw.pop("env", {})}  # type: ignore[dict-item]
    out = spec.parent / "out.oci"
    return vinci("build", spec, "-o", f"oci:{out}", *extra, env=env, **kw).digest


@pytest.fixture
def baseline(tmp_path: Path, vinci: VinciRunner) -> str:
    spec = make_tree(tmp_path / "baseline")
    digest = _build(vinci, spec, tmp_path / "cache-baseline")
    assert digest == TREE_DIGEST
    return digest


def test_other_checkout_directory_and_creation_order(
    tmp_path: Path, vinci: VinciRunner, baseline: str
) -> None:
    spec = make_tree(tmp_path / "x" / "somewhere else entirely", order_seed=3)
    assert _build(vinci, spec, tmp_path / "cache2") == baseline


def test_umask_077_checkout_and_build(tmp_path: Path, vinci: VinciRunner, baseline: str) -> None:
    old = os.umask(0o077)
    try:
        spec = make_tree(tmp_path / "private")
    finally:
        os.umask(old)
    # A checkout under umask 077 has 0600/0700 files; only the execute bit may carry over.
    assert stat.S_IMODE((spec.parent / "app/index.html").stat().st_mode) == 0o600
    assert _build(vinci, spec, tmp_path / "cache3", umask=0o077) == baseline


def test_timezone_and_locale(tmp_path: Path, vinci: VinciRunner, baseline: str) -> None:
    spec = make_tree(tmp_path / "tz")
    env = {"TZ": "Pacific/Chatham", "LANG": "tr_TR.UTF-8", "LC_ALL": "tr_TR.UTF-8"}
    assert _build(vinci, spec, tmp_path / "cache4", env=env) == baseline


def test_touched_mtimes_and_warm_cache(tmp_path: Path, vinci: VinciRunner, baseline: str) -> None:
    spec = make_tree(tmp_path / "touch")
    cache = tmp_path / "cache5"
    assert _build(vinci, spec, cache) == baseline
    for i, path in enumerate(sorted(spec.parent.rglob("*"))):
        if not path.is_symlink():
            os.utime(path, (1_000_000_000 + i, 1_234_567_890 + 7 * i))
    assert _build(vinci, spec, cache) == baseline  # warm cache, every stat changed
    assert _build(vinci, spec, cache) == baseline  # warm cache, nothing changed


@pytest.mark.parametrize("jobs", ["1", "4"])
def test_jobs(tmp_path: Path, vinci: VinciRunner, baseline: str, jobs: str) -> None:
    spec = make_tree(tmp_path / f"jobs{jobs}")
    assert _build(vinci, spec, tmp_path / f"cache-j{jobs}", "--jobs", jobs) == baseline


def test_non_root_user(request: pytest.FixtureRequest, vinci: VinciRunner, baseline: str) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root (to switch to another user) and setpriv")
    nobody = 65534
    # pytest's own temp root is private (0700); this user needs a path it can walk.
    shared = Path(tempfile.mkdtemp(prefix="vinci-nobody-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(shared, ignore_errors=True))
    spec = make_tree(shared / "src")
    cache = shared / "cache"
    cache.mkdir()
    for path in [shared, spec.parent, *spec.parent.rglob("*")]:
        if not path.is_symlink():
            # o+r for files (o+x would rightly make them executable in the image), o+rx dirs.
            os.chmod(path, os.stat(path).st_mode | (0o005 if path.is_dir() else 0o004))
    os.chown(cache, nobody, nobody)
    os.chown(spec.parent, nobody, nobody)  # for the output directory
    assert _build(vinci, spec, cache, user=nobody) == baseline


def test_negative_control_source_date_epoch(
    tmp_path: Path, vinci: VinciRunner, baseline: str
) -> None:
    spec = make_tree(tmp_path / "sde")
    other = _build(vinci, spec, tmp_path / "cache6", env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert other != baseline
    # ...and it is itself reproducible.
    again = _build(vinci, spec, tmp_path / "cache7", "--source-date-epoch", "1700000000")
    assert again == other


SELF = """\
spec-version: v1
image: example.com/vinci/self:1
layers:
  - directory: {path: /app, source: .}
"""


def _self_copying(root: Path) -> Path:
    """A spec that copies its own directory, as `COPY . /app` does."""
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.txt").write_text("main\n")
    (root / "deeper").mkdir()
    (root / "deeper" / "vinci.oci").write_text("not vinci's: its name is all it shares\n")
    spec = root / "vinci.yaml"
    spec.write_text(SELF)
    return spec


def test_a_spec_copying_its_own_directory_never_takes_in_vinci_s_files(
    tmp_path: Path, vinci: VinciRunner
) -> None:
    """The default output (vinci.oci), the lock (vinci.lock) and a cache inside the copied
    directory are left out of the layer (engine/builder/pool.py own_files), so every build gives the
    first one's digest, whatever command built it and whatever the builds before it wrote."""
    spec = _self_copying(tmp_path / "proj")
    env = {"VINCI_CACHE_DIR": str(tmp_path / "cache")}
    first = vinci("build", spec, env=env).digest
    assert (spec.parent / "vinci.oci" / "index.json").is_file()
    for _ in range(2):
        assert vinci("build", spec, env=env).digest == first
    vinci("lock", spec, env=env)
    assert (spec.parent / "vinci.lock").is_file()
    assert vinci("build", spec, env=env).digest == first
    for cache in (spec.parent / "cache", spec.parent):  # below the copied directory, or it
        inside = {"VINCI_CACHE_DIR": str(cache)}
        assert vinci("build", spec, "--no-lock", env=inside).digest == first
        assert vinci("build", spec, "--no-lock", env=inside).digest == first
        shutil.rmtree(spec.parent / "cache", ignore_errors=True)  # the next is another cache
    # A clean copy of the directory (no output, lock or cache in it) gives the same digest.
    clean = _self_copying(tmp_path / "clean")
    assert vinci("build", clean, "-o", f"oci:{tmp_path / 'out'}", env=env).digest == first
    # ...and what is only named like vinci's files is content like any other.
    (clean.parent / "deeper" / "vinci.oci").unlink()
    assert vinci("build", clean, "-o", f"oci:{tmp_path / 'out'}", env=env).digest != first


def test_an_output_inside_a_copied_directory_is_warned_about(
    tmp_path: Path, vinci: VinciRunner
) -> None:
    spec = _self_copying(tmp_path / "proj")
    env = {"VINCI_CACHE_DIR": str(tmp_path / "cache")}
    warned = vinci("build", spec, "-o", "oci:" + str(spec.parent / "out"), env=env)
    assert "warning: the output oci:" in warned.stderr
    assert "layers[0].directory copies: the next build will take it in" in warned.stderr
    assert len(warned.stderr.strip().splitlines()) == 1
    # The default output, an output the layer excludes, one outside: no warning.
    spec.write_text(SELF.replace("source: .}", 'source: ., exclude: ["out"]}'))
    for output in ([], ["-o", f"oci:{spec.parent / 'out'}"], ["-o", f"oci:{tmp_path / 'o'}"]):
        assert "warning" not in vinci("build", spec, *output, env=env).stderr
