"""Fixtures for the workbench tests (helpers are in tuikit.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tuikit import RUN_SH, SITE, SPEC, GatedBuild, make_app

from vinci_tui.app import Workbench


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A spec with a file, a directory and a combined layer, in the current directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.setenv("VINCI_KEYS", str(tmp_path / "no-keys.toml"))
    monkeypatch.setenv("VINCI_CONFIG", str(tmp_path / "no-config.toml"))  # engine/config.py
    # Log lines carry local wall-clock times (of the frozen clock): one zone for every run.
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    (tmp_path / "vinci.yaml").write_text(SPEC)
    (tmp_path / "run.sh").write_text(RUN_SH)
    for rel, text in SITE.items():
        path = tmp_path / "site" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.fixture
def app_factory(project: Path) -> Callable[..., Workbench]:
    def factory(**kwargs: Any) -> Workbench:
        return make_app(project, **kwargs)

    return factory


@pytest.fixture
def gated_builder(project: Path) -> Iterator[GatedBuild]:
    build = GatedBuild()
    yield build
    build.opened.set()
