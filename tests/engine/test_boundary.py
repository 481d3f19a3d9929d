"""The engine is headless and layered: importing it (and running a local build) never loads
Textual, a local build does not load the registry client, no engine module imports the
command line or the workbench, and no import cycle exists among engine modules."""

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
        from engine.cli.main import main
        assert main(["build", {str(hello)!r}, "-o", "oci:{tmp_path / "o"}", "-q"]) == 0
        """
    )
    modules = _modules_after(code)
    top = _top(modules)
    assert "textual" not in top
    assert "httpx" not in top
    # Nor what a spec without a lock, or a build without registry options, does not need.


def _engine_imports() -> dict[str, set[str]]:
    """Every engine module -> the engine modules it imports, wherever the import statement
    stands (module level, in a function, under TYPE_CHECKING): read from the source."""
    import ast

    modules: dict[str, Path] = {}
    for path in (REPO / "engine").rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.add(target)
        graph[name] = found
    return graph


def test_no_import_cycle_among_engine_modules() -> None:
    """Layers import only downward, so no engine module can reach itself through imports,
    function-level ones included. (A package's __init__ importing its own submodules is the
    package's door, not a cycle: edges into a package from its submodules are left out.)"""
    graph = _engine_imports()
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert cycles == []


def test_nothing_below_the_command_line_imports_it_or_the_workbench() -> None:
    graph = _engine_imports()
    offenders = sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        if not name.startswith("engine.cli") and name != "engine"
        for target in targets
        if target.startswith("engine.cli")
    )
    assert offenders == []
    import ast

    textual = sorted(
        str(path.relative_to(REPO))
        for path in (REPO / "engine").rglob("*.py")
        if path.name != "tui.py" or path.parent.name != "cli"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        and any(
            n.split(".")[0] in ("vinci_tui", "textual")
            for n in (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
        )
    )
    assert textual == []
