"""The workbench's pure parts, without a screen: the build model's states and titles, the log
lines, progress coalescing, the key file, and how `vinci tui` picks its spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.events import (
    BuildFailed,
    BuildFinished,
    BuildStarted,
    LayerCached,
    LayerDone,
    LayerFailed,
    LayerProgress,
    LayerQueued,
    LayerStarted,
    Log,
)
from engine.oci.descriptor import Descriptor
from engine.oci.digest import Digest
from vinci_tui.app import EXAMPLE, spec_to_open
from vinci_tui.clock import FrozenClock, format_age, format_seconds
from vinci_tui.fmt import bar, compact_bytes
from vinci_tui.keymap import load_keymap
from vinci_tui.messages import EngineEvent
from vinci_tui.model import BuildModel, describe

D = Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", Digest("ab" * 32), 1500)


def test_layer_states_follow_the_events() -> None:
    model = BuildModel(FrozenClock())
    assert model.title() == "not built yet"
    model.apply(BuildStarted("vinci.yaml", 3, 2, "gzip/x"))
    for i in range(3):
        model.apply(LayerQueued(i, f"layers[{i}].file"))
    assert model.title() == "building 0/3"
    model.apply(LayerStarted(0, "layers[0].file"))
    assert model.rows[0].state == "hashing"
    model.apply(LayerProgress(0, "hashing", 10, 100))
    assert model.rows[0].state == "hashing" and model.rows[0].fraction == 0.1
    model.apply(LayerProgress(0, "building", 50, 100))
    assert (model.rows[0].state, model.rows[0].phase) == ("building", "building")
    model.apply(LayerProgress(0, "building", 100, 100))
    assert model.rows[0].state == "compressing"  # all tar bytes in, the codec flushing
    model.apply(LayerDone(0, (D,), (Digest("cd" * 32),), False, 0.5))
    assert (model.rows[0].state, model.rows[0].cache_hit, model.rows[0].size) == (
        "done",
        False,
        1500,
    )
    model.apply(LayerStarted(1, "layers[1].file"))
    model.apply(LayerCached(1, "key", (D,)))
    model.apply(LayerDone(1, (D,), (Digest("cd" * 32),), True, 0.1))
    assert model.rows[1].state == "cached" and model.rows[1].cache_hit
    assert model.title() == "building 2/3"
    model.apply(LayerFailed(2, "boom"))
    assert model.rows[2].state == "failed"
    model.apply(BuildFailed("boom", cancelled=False))
    assert model.title() == "failed: boom"


def test_built_title_and_cancellation() -> None:
    model = BuildModel(FrozenClock(duration=1.23))
    model.apply(BuildStarted("vinci.yaml", 2, 2, "gzip/x"))
    model.apply(LayerQueued(0, "a"))
    model.apply(LayerQueued(1, "b"))
    model.apply(BuildFinished(Digest("ab" * 32), 9.9, 2, 1))
    assert model.title() == "built in 1.2 s, 1/2 cached"
    other = BuildModel(FrozenClock())
    other.apply(LayerQueued(0, "a"))
    assert other.apply(BuildFailed("build cancelled", cancelled=True)) == {0}
    assert other.rows[0].state == "cancelled" and other.title() == "cancelled"
    # Events for rows the build does not have (a push reports the config as -1) change none.
    assert other.apply(LayerProgress(-1, "pushing", 1, 2)) == set()


def test_log_lines() -> None:
    model = BuildModel(FrozenClock())
    model.apply(LayerQueued(0, "layers[0].file"))
    progress = LayerProgress(0, "building", 5, 10)
    assert describe(model, progress, new_phase=True) == ("event", "layers[0].file: building 10 B")
    assert describe(model, progress, new_phase=False) is None  # mid-phase progress: no line
    done = LayerProgress(0, "building", 10, 10)
    assert describe(model, done, new_phase=False) is None  # whether it was coalesced varies
    assert describe(model, Log("warning", "careful"), False) == ("warning", "careful")
    assert describe(model, BuildFailed("x", True), False) == ("warning", "build cancelled")
    line = describe(model, BuildStarted("s.yaml", 1, 1, "c"), False)
    assert line == ("event", "build started: s.yaml, 1 layers, 1 job, codec c")

    class Unknown:
        pass

    level, text = describe(model, Unknown(), False)  # type: ignore[arg-type,misc]
    assert level == "event" and "Unknown" in text


def test_progress_coalescing_rule() -> None:
    a = EngineEvent(1, LayerProgress(0, "building", 1, 10))
    assert a.can_replace(EngineEvent(1, LayerProgress(0, "building", 2, 10)))
    assert not a.can_replace(EngineEvent(1, LayerProgress(1, "building", 2, 10)))  # layer
    assert not a.can_replace(EngineEvent(1, LayerProgress(0, "hashing", 2, 10)))  # phase
    assert not a.can_replace(EngineEvent(2, LayerProgress(0, "building", 2, 10)))  # build
    assert not EngineEvent(1, LayerStarted(0, "x")).can_replace(a)


def test_formatting() -> None:
    assert [compact_bytes(n) for n in (0, 1023, 1536, 45 * 2**20, 3 * 2**30)] == [
        "0B",
        "1023B",
        "1.5K",
        "45M",
        "3.0G",
    ]
    assert str(bar(0.5, 8)) == "████····"
    assert str(bar(None, 4)) == "····"
    assert format_seconds(0.25) == "0.2 s" and format_seconds(75) == "75 s"
    assert format_age(30) == "just now" and format_age(7200) == "2 h ago"


def test_key_file(tmp_path: Path) -> None:
    known = {"build-now", "contents.sort"}
    path = tmp_path / "keys.toml"
    assert load_keymap(path, known) == ({}, [])  # no file: defaults
    path.write_text('[keys]\nbuild-now = "ctrl+b"\n"contents.sort" = ["o", "ctrl+o"]\n')
    assert load_keymap(path, known) == ({"build-now": "ctrl+b", "contents.sort": "o,ctrl+o"}, [])
    path.write_text('build-now = 3\nnope = "x"\n')
    keymap, problems = load_keymap(path, known)
    assert keymap == {} and len(problems) == 2
    path.write_text("[keys\n")
    keymap, problems = load_keymap(path, known)
    assert keymap == {} and problems[0].startswith(str(path))


def test_which_spec_vinci_tui_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert spec_to_open(None) == EXAMPLE  # nothing here: the hello example
    assert EXAMPLE.is_file()
    (tmp_path / "vinci.yaml").write_text("spec-version: v1\n")
    assert spec_to_open(None) == Path("vinci.yaml")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "vinci.yml").write_text("spec-version: v1\n")
    assert spec_to_open("sub") == Path("sub/vinci.yml")
