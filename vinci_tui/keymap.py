"""User key bindings: every binding has a stable id, and a TOML file can rebind it.

    # ~/.config/vinci/keys.toml  ($XDG_CONFIG_HOME/vinci/keys.toml; $VINCI_KEYS names another)
    [keys]
    build-now = "ctrl+b"          # one key
    toggle-watch = ["f5", "W"]    # or several
    "contents.sort" = "o"

The ids are listed by `?` in the workbench and in docs; unknown ids are reported, not fatal.
Textual applies the result with `App.set_keymap`, replacing the default keys of those ids.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from pathlib import Path

from textual.binding import Binding, BindingType


def default_path() -> Path:
    env = os.environ.get("VINCI_KEYS")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path.home() / ".config"
    return base / "vinci" / "keys.toml"


def binding_ids(bindings: Iterable[BindingType]) -> set[str]:
    return {b.id for b in bindings if isinstance(b, Binding) and b.id}


def load_keymap(path: Path, known: set[str]) -> tuple[dict[str, str], list[str]]:
    """The keymap in `path` (absent file: empty) and the problems found in it."""
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}, []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        return {}, [f"{path}: {e}"]
    table = data.get("keys", data)
    if not isinstance(table, dict):
        return {}, [f"{path}: [keys] must be a table of binding id = key"]
    keymap: dict[str, str] = {}
    problems: list[str] = []
    for binding_id, value in table.items():
        if isinstance(value, str):
            keys = value
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            keys = ",".join(value)
        else:
            problems.append(f"{path}: {binding_id}: expected a key or a list of keys")
            continue
        if binding_id not in known:
            problems.append(f"{path}: unknown binding id {binding_id!r}")
            continue
        keymap[binding_id] = keys.replace(" ", "")
    return keymap, problems
