"""The engine's value classes are frozen dataclasses, made here without compiling the same
method source on every start.

CPython 3.11's `dataclasses` writes the source of each generated method (__init__, __repr__,
__eq__, __hash__, __setattr__, __delattr__), compiles it and runs it, for every class at every
import: 1.2 ms a class on the machine of docs/performance.md, about 55 ms of a build's
start-up for the engine's 46 value classes, when the whole no-op rebuild takes 100 ms.
Compiling is five sixths of that, and what it gives depends on the source text alone.

So, as the interpreter keeps modules' byte code in __pycache__, this keeps the byte code of
the engine's generated methods there (one marshal file per interpreter version), keyed by the
exact source `dataclasses` wrote: a class gets the methods dataclasses makes, from the text it
makes them from, only not compiled again. A text not in the file is compiled as before and
added to it when the process ends, unless byte code is not being written
(PYTHONDONTWRITEBYTECODE) or the directory is read-only; an unreadable file is ignored.

Only classes defined in engine modules go through the cache (dataclasses passes the defining
module's globals), and every engine module imports `dataclass` and `field` from here
(tests/engine/test_boundary.py), so the cache is in place before the first class is made.
"""

from __future__ import annotations

import atexit
import dataclasses
import marshal
import os
import sys
from dataclasses import dataclass, field
from typing import Any

__all__ = ["dataclass", "field"]

_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")
_FILE = os.path.join(_DIR, f"values.{sys.implementation.cache_tag}.marshal")
# Code objects from another interpreter build must never be run: the file names its own.
_VERSION = sys.version
MAX_ENTRIES = 2000  # the engine makes about 600 methods


class MethodCache:
    """Byte code of generated methods by source text, loaded from and saved to `path`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.code: dict[str, Any] = {}
        self.used: set[str] = set()
        self.added = 0
        try:
            with open(path, "rb") as f:
                # loads(read()): marshal.load reads a file in small pieces.
                version, code = marshal.loads(f.read())
            if version == _VERSION and isinstance(code, dict):
                self.code = code
        except (OSError, EOFError, ValueError, TypeError):
            pass

    def compiled(self, source: str) -> Any:
        self.used.add(source)
        code = self.code.get(source)
        if code is None:
            # dont_inherit: exactly what dataclasses' own exec compiles (no __future__ flags
            # from this module: annotations stay evaluated).
            code = self.code[source] = compile(source, "<string>", "exec", dont_inherit=True)
            self.added += 1
        return code

    def save(self) -> None:
        if not self.added or sys.dont_write_bytecode:
            return
        if len(self.code) > MAX_ENTRIES:
            # Texts of classes since edited pile up in a working tree: keep what this run used.
            self.code = {source: self.code[source] for source in self.used}
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(marshal.dumps((_VERSION, self.code)))
            os.replace(tmp, self.path)  # a reader sees the old file or the new, whole
            self.added = 0
        except OSError:
            pass  # a read-only install: compiled again next time, as without the cache
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


_cache = MethodCache(_FILE)


def _exec(source: Any, globals: dict[str, Any] | None = None, locals: Any = None) -> None:
    """`exec` as dataclasses calls it, with an engine class's method source compiled once."""
    if type(source) is str and globals is not None:
        module = globals.get("__name__")
        if isinstance(module, str) and (module == "engine" or module.startswith("engine.")):
            source = _cache.compiled(source)
    exec(source, globals, locals)


# dataclasses looks `exec` up in its module globals before the builtins.
if getattr(dataclasses, "exec", None) is None:
    dataclasses.exec = _exec  # type: ignore[attr-defined]
    atexit.register(_cache.save)
