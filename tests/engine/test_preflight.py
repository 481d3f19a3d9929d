"""engine/preflight.py: which of the last stamp's layers still hold, worked out in a forked
child while the parent goes on; the same verdicts in this process when there is no child or
the child fails."""

from __future__ import annotations

import os
import threading
from array import array
from pathlib import Path
from typing import Any

import pytest

from engine import preflight
from engine.preflight import LayerVerdicts, layer_holds

OLD = 1_500_000_000


def _entry(directory: Path) -> tuple[Any, ...]:
    """A stamp's layer entry for every file under `directory`, as it is now."""
    paths, keys, listings = [], array("q"), []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        listings.append((dirpath, sorted(os.listdir(dirpath))))
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            paths.append(path)
            keys.extend((st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))
    return (repr(directory.name), "record", [], listings, paths, keys.tobytes())


def _tree(root: Path, name: str, files: int) -> Path:
    d = root / name
    (d / "sub").mkdir(parents=True)
    for i in range(files):
        (d / "sub" / f"{i}.txt").write_text(f"{name} {i}\n")
    return d


@pytest.fixture
def stamp(tmp_path: Path) -> tuple[list[Any], list[bool]]:
    """Four layers as the last stamp saw them, then changed as each says; and the verdicts."""
    same = _tree(tmp_path, "same", 300)
    edited = _tree(tmp_path, "edited", 300)
    grown = _tree(tmp_path, "grown", 300)
    gone = _tree(tmp_path, "gone", 10)
    layers = [_entry(same), _entry(edited), None, _entry(grown), _entry(gone)]
    (edited / "sub" / "7.txt").write_text("edited 7, changed\n")
    (grown / "sub" / "new.txt").write_text("new\n")
    for p in gone.rglob("*"):
        if p.is_file():
            p.unlink()
    (gone / "sub").rmdir()
    gone.rmdir()
    return layers, [True, False, False, False, False]


def _all(verdicts: LayerVerdicts) -> list[bool]:
    return [verdicts.holds(i) for i in range(5)]


def _forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fork

    def fork() -> int:
        pid = real()
        if pid:
            calls.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    return calls


def test_a_child_works_out_the_verdicts(
    stamp: tuple[list[Any], list[bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    layers, expected = stamp
    assert threading.active_count() == 1  # a child is never forked beside running threads
    forks = _forks(monkeypatch)
    verdicts = LayerVerdicts(layers)
    assert len(forks) == 1 and len(os.sched_getaffinity(0)) > 1
    assert _all(verdicts) == expected
    with pytest.raises(ChildProcessError):
        os.waitpid(forks[0], os.WNOHANG)  # reaped


def test_known_verdicts_are_not_checked_again(
    stamp: tuple[list[Any], list[bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    layers, _ = stamp
    forks = _forks(monkeypatch)
    monkeypatch.setattr(preflight, "FORK_ABOVE", 1)
    # The caller says layer 1 holds (it checked it just before it was edited, say).
    verdicts = LayerVerdicts(layers, {0: True, 1: True})
    assert _all(verdicts) == [True, True, False, False, False]
    assert len(forks) == 1


def test_small_checks_and_one_cpu_stay_in_this_process(
    stamp: tuple[list[Any], list[bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    layers, expected = stamp
    forks = _forks(monkeypatch)
    monkeypatch.setattr(preflight, "FORK_ABOVE", 10_000)
    assert _all(LayerVerdicts(layers)) == expected
    monkeypatch.setattr(preflight, "FORK_ABOVE", 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert _all(LayerVerdicts(layers)) == expected
    assert _all(LayerVerdicts(layers, fork=False)) == expected
    assert forks == []


def test_no_child_while_another_thread_runs(
    stamp: tuple[list[Any], list[bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    layers, expected = stamp
    forks = _forks(monkeypatch)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert _all(LayerVerdicts(layers)) == expected
    finally:
        stop.set()
        other.join()
    assert forks == []


def test_a_failed_fork_or_child_means_checking_here(
    stamp: tuple[list[Any], list[bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    layers, expected = stamp

    def no_fork() -> int:
        raise OSError(11, "Resource temporarily unavailable")

    with monkeypatch.context() as m:
        m.setattr(os, "fork", no_fork)
        assert _all(LayerVerdicts(layers)) == expected
    # A child that answers short, or with something else than verdicts.
    for answer in (b"", b"1", b"1x11"):
        with monkeypatch.context() as m:
            m.setattr(preflight, "_answer", lambda layers, todo, a=answer: a)
            forks = _forks(m)
            assert _all(LayerVerdicts(layers)) == expected
            assert len(forks) == 1


def test_the_child_holds_none_of_the_parents_standard_streams(
    stamp: tuple[list[Any], list[bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader of vinci's output sees its end when vinci exits, even if a child still runs."""
    import time

    layers, expected = stamp
    forks = _forks(monkeypatch)

    answer = preflight._answer

    def slow(layers: list[Any], todo: list[int]) -> bytes:
        time.sleep(0.5)
        return answer(layers, todo)

    monkeypatch.setattr(preflight, "_answer", slow)
    verdicts = LayerVerdicts(layers)
    (pid,) = forks
    deadline = time.monotonic() + 0.4
    while time.monotonic() < deadline:  # until the child has closed them
        held = set(os.listdir(f"/proc/{pid}/fd"))
        if not held & {"0", "1", "2"}:
            break
        time.sleep(0.01)
    assert not held & {"0", "1", "2"}
    assert _all(verdicts) == expected


def test_an_unasked_child_is_reaped_on_close(
    stamp: tuple[list[Any], list[bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    forks = _forks(monkeypatch)
    LayerVerdicts(stamp[0]).close()
    with pytest.raises(ChildProcessError):
        os.waitpid(forks[0], os.WNOHANG)


def test_a_damaged_entry_or_an_import_layer_does_not_hold(tmp_path: Path) -> None:
    assert not layer_holds(None)
    assert not layer_holds(("node", "record"))
    entry = _entry(_tree(tmp_path, "t", 3))
    assert layer_holds(entry)
    assert not layer_holds((*entry[:5], b"\0" * 8))
    assert not layer_holds((*entry[:4], [str(tmp_path / "t" / "sub" / "0.txt")], "not bytes"))
