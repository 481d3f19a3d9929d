"""The worker pool's events, cancellation and memory: what every consumer relies on."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trees import make_tree

from engine import BuildCancelled, CancelToken, load_spec
from engine.builder.pool import Builder
from engine.cache import maintenance
from engine.cache.store import BlobStore
from engine.events import (
    BuildFinished,
    BuildStarted,
    Event,
    LayerDone,
    LayerProgress,
    LayerQueued,
    LayerStarted,
)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            self.events.append(event)

    def of(self, kind: type) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


def test_event_sequence_per_layer(tmp_path: Path) -> None:
    spec = load_spec(make_tree(tmp_path / "src"))
    rec = Recorder()
    result = Builder(BlobStore(tmp_path / "cache"), jobs=2).build(spec, rec)
    assert isinstance(rec.events[0], BuildStarted)
    assert isinstance(rec.events[-1], BuildFinished)
    assert rec.events[-1].manifest_digest == result.manifest.digest
    for i in range(len(spec.layers)):
        kinds = [type(e) for e in rec.events if getattr(e, "index", None) == i]
        assert kinds[0] is LayerQueued and kinds[1] is LayerStarted and kinds[-1] is LayerDone
        progress = [e for e in rec.of(LayerProgress) if e.index == i]  # type: ignore[attr-defined]
        # Monotonic, and the last one says the phase is complete.
        building = [p for p in progress if p.phase == "building"]
        assert building and building[-1].done == building[-1].total
        assert all(a.done <= b.done for a, b in itertools.pairwise(building))


def test_progress_is_rate_limited(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "big", "wb") as f:
        f.write(os.urandom(1 << 20) * 64)  # 64 MiB, 64 reads of 1 MiB
    (src / "vinci.yaml").write_text(
        "spec-version: v1\nlayers:\n  - file: {path: /big, source: ./big}\n"
    )
    rec = Recorder()
    Builder(BlobStore(tmp_path / "cache"), jobs=1).build(load_spec(src / "vinci.yaml"), rec)
    building = [e for e in rec.of(LayerProgress) if e.phase == "building"]  # type: ignore[attr-defined]
    # At most ~10 per second plus the final one; far fewer than the 64+ chunks written.
    assert 1 <= len(building) < 40


def test_cancel_mid_layer_leaves_no_entry(tmp_path: Path) -> None:
    spec = load_spec(make_tree(tmp_path / "src", big_size=256 * 2**20))
    store = BlobStore(tmp_path / "cache")
    token = CancelToken()
    rec = Recorder()

    def sink(event: Event) -> None:
        rec(event)
        if isinstance(event, LayerProgress) and event.phase == "building" and event.done > 0:
            token.cancel()

    with pytest.raises(BuildCancelled):
        Builder(store, jobs=1).build(spec, sink, token)
    report = maintenance.verify(store)
    assert report.ok
    built = {e.index for e in rec.of(LayerDone)}  # type: ignore[attr-defined]
    records = list(store.layer_dir.glob("*.json"))
    assert len(records) == len(built) < len(spec.layers)
    # No stray file: only complete blobs, each named by its content.
    assert not [p for p in store.blob_dir.iterdir() if p.name.startswith(".")]
    # And the next build succeeds.
    Builder(store, jobs=1).build(spec)


def test_a_failing_layer_stops_its_siblings_and_reports_the_cause(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(1 << 20) * 128)
    (src / "gone").write_bytes(b"x")
    (src / "vinci.yaml").write_text(
        "spec-version: v1\nlayers:\n"
        "  - file: {path: /big, source: ./big}\n"
        "  - file: {path: /gone, source: ./gone}\n"
    )
    spec = load_spec(src / "vinci.yaml")
    (src / "gone").unlink()  # vanishes after validation, before the build reads it
    with pytest.raises(Exception, match="gone"):
        Builder(BlobStore(tmp_path / "cache"), jobs=2).build(spec)
    assert not [t for t in threading.enumerate() if t.name.startswith("vinci-layer")]


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    files=st.dictionaries(
        st.text(
            st.characters(min_codepoint=48, max_codepoint=0x24F, exclude_characters="/\\"),
            min_size=1,
            max_size=12,
        ),
        st.binary(max_size=3000),
        min_size=1,
        max_size=12,
    ),
    seed=st.integers(0, 1000),
)
def test_random_trees_same_digest_whatever_the_creation_order(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes], seed: int
) -> None:
    import random

    digests = set()
    for attempt, order in enumerate(
        (sorted(files), random.Random(seed).sample(sorted(files), len(files)))
    ):
        root = tmp_path_factory.mktemp("tree")
        (root / "t").mkdir()
        for name in order:
            sub = root / "t" / ("d" + str(len(name) % 3))  # by name: only the order varies
            sub.mkdir(exist_ok=True)
            (sub / name).write_bytes(files[name])
        (root / "vinci.yaml").write_text(
            "spec-version: v1\nlayers:\n  - directory: {path: /t, source: ./t}\n"
        )
        store = BlobStore(tmp_path_factory.mktemp("cache"))
        result = Builder(store, jobs=1 + attempt, threads=1 + attempt).build(
            load_spec(root / "vinci.yaml")
        )
        digests.add(result.manifest.digest)
    assert len(digests) == 1


@pytest.mark.slow
def test_memory_stays_flat_as_the_layer_grows(tmp_path: Path) -> None:
    """Peak RSS of a whole `vinci build` for a 64 MiB and a 1 GiB layer differs by little."""
    script = textwrap.dedent(
        """
        import sys
        from engine.cli.main import main
        code = main(sys.argv[1:])
        # VmHWM is this address space's peak; ru_maxrss would carry pytest's over execve.
        hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
        print(int(hwm.split()[1]))
        sys.exit(code)
        """
    )
    peaks = []
    for size in (64 << 20, 1 << 30):
        src = tmp_path / f"s{size}"
        src.mkdir()
        with open(src / "big", "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(size >> 20):
                f.write(block)
        (src / "vinci.yaml").write_text(
            "spec-version: v1\nlayers:\n  - file: {path: /big, source: ./big}\n"
        )
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                script,
                "build",
                str(src),
                "-o",
                f"oci:{src}/o",
                "-q",
                "--compression",
                "none",
            ],
            cwd=REPO,
            env={**os.environ, "VINCI_CACHE_DIR": str(tmp_path / f"c{size}")},
            capture_output=True,
            text=True,
            check=True,
        )
        peaks.append(int(out.stdout.split()[-1]) * 1024)
        (src / "big").unlink()
        (src / "o").exists() and __import__("shutil").rmtree(src / "o")
    small, large = peaks
    assert large < 150 * 2**20, f"peak RSS {large / 2**20:.0f} MiB for a 1 GiB layer"
    assert large < small * 1.1 + 8 * 2**20, f"{small / 2**20:.0f} MiB -> {large / 2**20:.0f} MiB"
