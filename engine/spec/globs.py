"""The globs of a directory layer's `include` and `exclude`: one matcher, used by the loader
to check a pattern and by the planner to walk a tree."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache


@cache
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as a regex over '/'-separated relative paths: `*` and `?` stay within a name,
    `**` crosses directories; a pattern without '/' matches a name at any depth."""
    anchored = "/" in pattern.rstrip("/")
    pattern = pattern.rstrip("/")
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1 : j].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    prefix = "" if anchored else "(?:.*/)?"
    return re.compile(f"^{prefix}{''.join(out)}$")


def glob_match(patterns: Iterable[str], rel: str) -> bool:
    return any(_glob_regex(p).match(rel) for p in patterns)
