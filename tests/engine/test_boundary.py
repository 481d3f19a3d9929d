"""The engine is headless: importing it (and running a local build) never loads Textual,
and a local build does not load the registry client (nor the lock code, nor argparse)
either."""

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
    modules = _modules_after(code)
    top = _top(modules)
    assert "textual" not in top
    assert "httpx" not in top
    # Nor what a spec without a lock, or a build without registry options, does not need.
    assert not [m for m in modules if m == "engine.lock" or m.startswith("engine.registry")]
    assert "argparse" not in modules  # the usual arguments are read without it


def test_engine_value_classes_are_made_through_the_method_cache() -> None:
    # engine/values.py must be in place before a class is made, and every engine dataclass
    # is one of its: a `dataclass` from anywhere else compiles its methods on every start.
    import ast

    offenders = []
    for path in sorted((REPO / "engine").rglob("*.py")):
        if path.name == "values.py" and path.parent.name == "engine":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == "dataclasses":
                names = {alias.name for alias in node.names}
                if names & {"dataclass", "field", "*"}:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
            elif (
                isinstance(node, ast.Attribute)
                and node.attr == "dataclass"
                and isinstance(node.value, ast.Name)
                and node.value.id == "dataclasses"
            ):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []
