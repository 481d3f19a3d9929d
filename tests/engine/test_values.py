"""Value classes made through engine/values.py's method cache are the classes dataclasses
makes: the same byte code, annotations and defaults for every generated method, whether the
cache was empty, full, damaged or from another interpreter. Each case runs a private copy of
the engine package, so its __pycache__ (and the cache file in it) is the test's own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO

# Imports every engine module, then prints a fingerprint of each generated method of each
# engine dataclass, and how many method sources had to be compiled.
FINGERPRINT = textwrap.dedent(
    """
    import dataclasses, importlib, json, pkgutil, re, sys
    if sys.argv[1] == "plain":
        dataclasses.exec = exec  # engine.values leaves a patched module alone
    import engine
    for info in sorted(pkgutil.walk_packages(engine.__path__, "engine."), key=lambda i: i.name):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)

    def r(value):  # a repr without the addresses that differ from process to process
        return re.sub(r" at 0x[0-9a-f]+", "", repr(value))

    def code(c):
        return [c.co_name, c.co_qualname, c.co_filename, c.co_firstlineno, c.co_argcount,
                c.co_kwonlyargcount, c.co_flags, c.co_code.hex(), list(c.co_names),
                list(c.co_varnames), list(c.co_freevars),
                [code(k) if hasattr(k, "co_code") else r(k) for k in c.co_consts]]

    prints = {}
    for name, module in sorted(sys.modules.items()):
        if not name.startswith("engine"):
            continue
        for cls in vars(module).values():
            if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == name:
                for method in ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__",
                               "__delattr__"):
                    f = cls.__dict__.get(method)
                    f = getattr(f, "__wrapped__", f)  # __repr__ is wrapped against recursion
                    if f is not None and hasattr(f, "__code__"):
                        prints[f"{cls.__qualname__}.{method}"] = [
                            code(f.__code__), r(f.__defaults__), r(f.__kwdefaults__),
                            sorted((k, r(v)) for k, v in f.__annotations__.items()),
                        ]
    import engine.values as v
    compiled = v._cache.added if sys.argv[1] != "plain" else -1
    print(json.dumps({"methods": prints, "compiled": compiled}))
    """
)


@pytest.fixture
def engine_copy(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    shutil.copytree(REPO / "engine", root / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _fingerprint(root: Path, mode: str, write_bytecode: bool = True) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", FINGERPRINT, mode],
        cwd=root,
        env=env | {"PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result


def _cache_file(root: Path) -> Path:
    found = list((root / "engine" / "__pycache__").glob("values.*.marshal"))
    assert len(found) == 1
    return found[0]


def test_cached_methods_are_the_ones_dataclasses_makes(engine_copy: Path) -> None:
    plain = _fingerprint(engine_copy, "plain")
    assert not list((engine_copy / "engine" / "__pycache__").glob("values.*.marshal"))
    first = _fingerprint(engine_copy, "cached")  # compiles, then writes the file at exit
    second = _fingerprint(engine_copy, "cached")  # compiles nothing
    assert len(plain["methods"]) > 200  # type: ignore[arg-type]
    assert first["methods"] == plain["methods"]
    assert second["methods"] == plain["methods"]
    # Every method source once (some classes are made inside functions: more than listed).
    assert first["compiled"] >= len(plain["methods"])  # type: ignore[arg-type,operator]
    assert second["compiled"] == 0


@pytest.mark.parametrize("damage", ["garbage", "other-interpreter", "truncated"])
def test_a_damaged_or_foreign_cache_is_ignored_and_replaced(engine_copy: Path, damage: str) -> None:
    plain = _fingerprint(engine_copy, "plain")
    empty = _fingerprint(engine_copy, "cached")
    path = _cache_file(engine_copy)
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"\x00not marshal" * 100)
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        import marshal

        _version, code = marshal.loads(data)
        path.write_bytes(marshal.dumps(("2.7.18 (some other build)", code)))
    again = _fingerprint(engine_copy, "cached")
    assert again["methods"] == plain["methods"]
    assert again["compiled"] == empty["compiled"]  # as if there were no file
    assert _fingerprint(engine_copy, "cached")["compiled"] == 0  # rewritten whole


def test_nothing_is_written_without_byte_code_or_where_it_cannot_be(engine_copy: Path) -> None:
    plain = _fingerprint(engine_copy, "plain", write_bytecode=False)
    unwritten = _fingerprint(engine_copy, "cached", write_bytecode=False)
    assert unwritten["methods"] == plain["methods"]
    assert not (engine_copy / "engine" / "__pycache__").exists()
    # Where nothing can be written (a file where the directory would be, which stops root
    # too), the classes are made all the same and nothing is said.
    (engine_copy / "engine" / "__pycache__").write_bytes(b"")
    blocked = subprocess.run(
        [sys.executable, "-c", FINGERPRINT, "cached"],
        cwd=engine_copy,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        | {"PYTHONPATH": str(engine_copy)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(blocked.stdout)["methods"] == plain["methods"]
    assert blocked.stderr == ""


def test_the_vinci_command_saves_the_cache_though_it_skips_teardown(
    engine_copy: Path, tmp_path: Path
) -> None:
    # engine.main.run() (the `vinci` command, python -m engine) leaves with os._exit after the
    # exit functions: the save is one of them.
    spec = tmp_path / "vinci.yaml"
    spec.write_text("spec-version: v1\nlayers:\n  - file: {path: /a, contents: a}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    run = subprocess.run(
        [sys.executable, "-c", "from engine.main import run; run()", "validate", str(spec)],
        cwd=engine_copy,
        env=env | {"PYTHONPATH": str(engine_copy)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip().endswith("ok (1 layers)")
    assert _cache_file(engine_copy).stat().st_size > 0
