"""Which spec file a command means, and the files that belong beside it (its default output
and its lock): one rule for the CLI, the workbench and the library."""

from __future__ import annotations

import os

from engine.errors import UsageError

SPEC_NAMES = ("vinci.yaml", "vinci.yml")


def locate_spec(given: str | os.PathLike[str] | None) -> str | None:
    """The spec file a command means: `given`, or the spec in the directory it names, or the
    one in the current directory; None when that directory has none."""
    if given:
        given = os.fspath(given)
        if not os.path.isdir(given):
            return given
        found = [os.path.join(given, n) for n in SPEC_NAMES]
    else:
        found = list(SPEC_NAMES)
    return next((p for p in found if os.path.isfile(p)), None)


def find_spec(given: str | os.PathLike[str] | None) -> str:
    """locate_spec, or a usage error that says where no spec was found."""
    found = locate_spec(given)
    if found is not None:
        return found
    if given:
        raise UsageError(f"no vinci.yaml in {os.fspath(given)}")
    raise UsageError("no spec given and no vinci.yaml in the current directory")


def beside_spec(spec_path: str | os.PathLike[str], suffix: str) -> str:
    """The spec's path with its suffix replaced: where its default output (.oci) and its lock
    (.lock) are."""
    head, name = os.path.split(os.fspath(spec_path))
    dot = name.rfind(".")
    stem = name[:dot] if 0 < dot < len(name) - 1 else name
    return os.path.join(head, stem + suffix)
