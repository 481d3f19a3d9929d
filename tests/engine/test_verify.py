"""`vinci verify`: every example builds to the same digest under every perturbation, and a
deliberately injected non-determinism (test-only hooks in engine/builder/testhooks.py) is caught,
pinned on the right perturbation and explained: a chunk-size-dependent codec shows up as a
compression-only change under `read-chunk` alone; a wall-clock file in each layer as a
content change in every layer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, VinciRunner, copy_example
from trees import make_tree

from engine.verify import NAMES

FAULT = {"VINCI_TESTING": "1", "VINCI_TEST_HOOKS": ""}


def _verify(vinci: VinciRunner, spec: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    run = vinci("verify", spec, "--json", *args, env=env, check=False)
    assert run.returncode in (0, 1), run.stderr
    data = json.loads(run.stdout)
    assert run.returncode == (0 if data["reproducible"] else 1)
    return data


def _statuses(data: Any) -> dict[str, str]:
    return {b["name"]: b["status"] for b in data["builds"]}


@pytest.mark.parametrize("example", sorted(p.parent.name for p in EXAMPLES.glob("*/vinci.yaml")))
def test_every_example_verifies(
    tmp_path: Path, vinci: VinciRunner, busybox_path: Path, example: str
) -> None:
    spec = copy_example(example, tmp_path / example, busybox_path)
    data = _verify(vinci, spec)
    statuses = _statuses(data)
    assert list(statuses) == list(NAMES)  # every perturbation ran (or says why not)
    assert statuses["baseline"] == "baseline"
    skipped = {n for n, s in statuses.items() if s == "skipped"}
    assert skipped <= {"user"}
    assert {s for n, s in statuses.items() if n != "baseline" and n not in skipped} == {"match"}
    digests = {b["manifest"] for b in data["builds"] if b["status"] != "skipped"}
    assert len(digests) == 1
    assert data["reproducible"] is True


def test_a_tree_with_links_long_and_non_ascii_names_verifies(
    tmp_path: Path, vinci: VinciRunner
) -> None:
    """The copies verify makes keep what the planner sees: symlinks inside a directory source
    stay links, a source the spec names through a link is followed, excluded files and
    non-ASCII and 140-byte names survive the reverse-order copy."""
    spec = make_tree(tmp_path / "src", order_seed=5)
    (spec.parent / "tool-link").symlink_to("tool")
    spec.write_text(spec.read_text().replace("source: ./tool}", "source: ./tool-link}"))
    data = _verify(vinci, spec, "--skip", "user")
    assert set(_statuses(data).values()) == {"baseline", "match"}


def test_chunk_dependent_codec_is_caught_and_explained(
    tmp_path: Path, vinci: VinciRunner, busybox_path: Path
) -> None:
    spec = copy_example("hello", tmp_path / "hello", busybox_path)
    env = {**FAULT, "VINCI_TEST_HOOKS": "chunked-codec"}
    data = _verify(vinci, spec, "--skip", "user", env=env)
    assert data["reproducible"] is False
    statuses = _statuses(data)
    # Only the perturbation that changes write sizes changes the compressed bytes.
    assert {n for n, s in statuses.items() if s == "mismatch"} == {"read-chunk"}
    build = next(b for b in data["builds"] if b["name"] == "read-chunk")
    assert build["explanation"] == [
        "layer 0 recompressed (same diff_id): codec output, compressed bytes"
    ]
    [layer] = [x for x in build["diff"]["layers"] if x["change"] != "unchanged"]
    assert layer["a"]["diff_id"] == layer["b"]["diff_id"]
    assert layer["a"]["created_by"] == "vinci: file /cat"  # the 2 MB file; /message is tiny
    codec = layer["compression"][0]
    assert codec["cause"] == "codec output" and codec["after"] == "same codec, other bytes"

    text = vinci("verify", spec, "--only", "read-chunk", env=env, check=False)
    assert text.returncode == 1
    assert "NOT reproducible: 1 of 1 perturbed builds differ" in text.stdout
    assert "read-chunk (sources read 65521 bytes at a time" in text.stdout
    assert "recompressed" in text.stdout and "the tar bytes are identical" in text.stdout


def test_clock_in_layer_is_caught_and_explained(
    tmp_path: Path, vinci: VinciRunner, busybox_path: Path
) -> None:
    spec = copy_example("hello", tmp_path / "hello", busybox_path)
    env = {**FAULT, "VINCI_TEST_HOOKS": "clock-in-layer"}
    data = _verify(vinci, spec, "--only", "serial", "--only", "tz-locale", env=env)
    assert _statuses(data) == {
        "baseline": "baseline",
        "serial": "mismatch",
        "tz-locale": "mismatch",
    }
    for build in data["builds"][1:]:
        assert build["explanation"] == [
            f"layer {i} changed: /.vinci-test-clock changed (content{mtime})"
            for i, mtime in enumerate(_mtime_suffixes(build))
        ]


def _mtime_suffixes(build: Any) -> list[str]:
    """Each changed layer's clock file has new contents; its mtime (whole seconds) changed
    too unless both builds ran within the same second."""
    out = []
    for layer in build["diff"]["layers"]:
        [f] = layer["files"]
        causes = [c["cause"] for c in f["causes"]]
        assert causes[0] == "content" and set(causes) <= {"content", "mtime"}
        out.append(", mtime" if "mtime" in causes else "")
    return out


def test_faults_need_vinci_testing_too(
    tmp_path: Path, vinci: VinciRunner, busybox_path: Path
) -> None:
    spec = copy_example("hello", tmp_path / "hello", busybox_path)
    cache = str(tmp_path / "cache")
    plain = vinci("build", spec, env={"VINCI_CACHE_DIR": cache}).digest
    hooks = {"VINCI_TEST_HOOKS": "clock-in-layer,chunked-codec", "VINCI_READ_CHUNK": "4093"}
    stray = vinci("build", spec, env={"VINCI_CACHE_DIR": cache + "2", **hooks}).digest
    assert stray == plain
    bad = vinci(
        "build",
        spec,
        env={"VINCI_CACHE_DIR": cache + "3", **FAULT, "VINCI_TEST_HOOKS": "nope"},
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1].startswith("vinci: VINCI_TEST_HOOKS: unknown hook")


def test_perturbation_selection(tmp_path: Path, vinci: VinciRunner, busybox_path: Path) -> None:
    listed = vinci("verify", "--list").stdout.split()
    assert all(name in listed for name in NAMES)
    spec = copy_example("hello", tmp_path / "hello", busybox_path)
    bad = vinci("verify", spec, "--only", "phase-of-moon", check=False)
    assert bad.returncode == 1
    assert "unknown perturbation 'phase-of-moon'" in bad.stderr and "Traceback" not in bad.stderr
    keep = tmp_path / "kept"
    data = _verify(vinci, spec, "--only", "checkout,umask", "--keep", str(keep))
    assert _statuses(data) == {"baseline": "baseline", "checkout": "match", "umask": "match"}
    [work] = keep.iterdir()
    assert (work / "checkout" / "out.oci" / "index.json").is_file()
