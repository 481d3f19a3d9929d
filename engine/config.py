"""The user's vinci settings file: defaults for options a flag or an environment variable
also sets, so that a CI runner's image (or a developer's home) names the fleet cache once.

    # ~/.config/vinci/config.toml  ($XDG_CONFIG_HOME/vinci/config.toml; $VINCI_CONFIG names
    # another, and VINCI_CONFIG=/dev/null none)
    cache-from = "registry.example/ci/vinci-cache"   # --cache-from, $VINCI_CACHE_FROM
    cache-to = "registry.example/ci/vinci-cache"     # --cache-to, $VINCI_CACHE_TO
    cache-required = true                            # --cache-required, $VINCI_CACHE_REQUIRED

A setting's flag wins over its environment variable, which wins over this file. TOML, as the
workbench's keys.toml beside it. Each key is the flag's name; a key vinci does not know, or a
value of the wrong type, is a usage error naming the file, so a typo never passes unseen. A
missing file is no settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import UsageError

ENV = "VINCI_CONFIG"


@dataclass(frozen=True)
class Settings:
    """What the settings file says: None for what it does not set."""

    cache_from: str | None = None
    cache_to: str | None = None
    cache_required: bool | None = None
    path: str = ""  # the file it came from, for messages


def config_path() -> Path:
    """$VINCI_CONFIG, else $XDG_CONFIG_HOME/vinci/config.toml, else ~/.config/vinci/..."""
    named = os.environ.get(ENV, "").strip()
    if named:
        return Path(named)
    xdg = os.environ.get("XDG_CONFIG_HOME", "").strip()
    if xdg:
        return Path(xdg) / "vinci" / "config.toml"
    try:
        home = Path.home()
    except RuntimeError:  # no $HOME and no password entry: no settings file either
        return Path(os.devnull)
    return home / ".config" / "vinci" / "config.toml"


# key -> (Settings field, the type its value must have, that type's name for messages)
_KEYS: dict[str, tuple[str, type, str]] = {
    "cache-from": ("cache_from", str, "a repository (a string)"),
    "cache-to": ("cache_to", str, "a repository (a string)"),
    "cache-required": ("cache_required", bool, "true or false"),
}


def load_settings(path: Path | None = None) -> Settings:
    """The settings in `path` (default: config_path()); a missing file sets nothing."""
    path = path if path is not None else config_path()
    try:
        text = path.read_bytes().decode("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return Settings(path=str(path))
    except OSError as e:
        raise UsageError(f"{path}: cannot read the vinci settings file: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the vinci settings file is not UTF-8 text") from None
    # Imported only for a file there is: the parser costs every build without one ~3 ms.
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: not a TOML file: {e}") from None
    values: dict[str, object] = {}
    for key, value in data.items():
        known = _KEYS.get(key)
        if known is None:
            names = ", ".join(_KEYS)
            raise UsageError(f"{path}: unknown setting {key!r} (vinci knows {names})")
        field, kind, described = known
        if not isinstance(value, kind):
            raise UsageError(f"{path}: {key} must be {described}")
        values[field] = value.strip() if isinstance(value, str) else value
    return Settings(path=str(path), **values)  # type: ignore[arg-type]


__all__ = ["ENV", "Settings", "config_path", "load_settings"]
