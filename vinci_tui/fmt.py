"""Small text renderers shared by the panes: sizes, digests, progress bars."""

from __future__ import annotations

from rich.text import Text

from engine.humanize import human_bytes
from engine.oci.digest import Digest

__all__ = ["bar", "compact_bytes", "human_bytes", "short_digest"]

_EIGHTHS = " ▏▎▍▌▋▊▉"


def compact_bytes(n: float) -> str:
    """At most 6 characters: '124B', '1.2K', '45M', '3.4G'."""
    for unit in ("B", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            if unit == "B":
                return f"{n:.0f}B"
            return f"{n:.1f}{unit}" if n < 10 else f"{n:.0f}{unit}"
        n /= 1024
    return f"{n:.0f}T"


def short_digest(digest: Digest | str | None, n: int = 12) -> str:
    if digest is None:
        return ""
    text = str(digest)
    return text.removeprefix("sha256:")[:n]


def bar(fraction: float | None, width: int, style: str = "bright_blue") -> Text:
    """A progress bar `width` cells wide, in eighths; unknown progress is a dim track."""
    if fraction is None:
        return Text("·" * width, style="dim")
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    text = Text("█" * full, style=style)
    if part and full < width:
        text.append(_EIGHTHS[part], style=style)
        full += 1
    text.append("·" * (width - full), style="dim")
    return text
