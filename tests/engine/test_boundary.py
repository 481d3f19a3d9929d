"""The engine is headless: importing it (and running a local build) never loads Textual,
and a local build does not load the registry client either."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import REPO


def _modules_after(code: str) -> set[str]:
    script = code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def _top(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_engine_never_imports_textual() -> None:
    code = textwrap.dedent(
        """
        import pkgutil, importlib, engine
        for info in pkgutil.walk_packages(engine.__path__, "engine."):
            if not info.name.endswith("__main__"):  # that one runs the CLI
                importlib.import_module(info.name)
        """
    )
    top = _top(_modules_after(code))
    assert "engine" in top
    assert "textual" not in top and "vinci_tui" not in top


def test_local_build_loads_neither_textual_nor_httpx(tmp_path: Path, hello: Path) -> None:
    code = textwrap.dedent(
        f"""
        import os
        os.environ["VINCI_CACHE_DIR"] = {str(tmp_path / "c")!r}
        from engine.cli import main
        assert main(["build", {str(hello)!r}, "-o", "oci:{tmp_path / "o"}", "-q"]) == 0
        """
    )
    top = _top(_modules_after(code))
    assert "textual" not in top
    assert "httpx" not in top
