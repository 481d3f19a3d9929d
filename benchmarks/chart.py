"""A small hand-written SVG chart: grouped horizontal bars, one panel per measure.

No plotting library: the chart is a few dozen rectangles and labels, and its bytes depend on
the figures alone (fixed fonts, sizes and rounding), so regenerating it changes the file only
when a figure changed.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from html import escape

COLORS = {"vinci": "#2f6fb0", "baseline": "#b8b8b8"}
WIDTH = 760
LABEL_W = 250
BAR_H = 14
GAP = 6
GROUP_GAP = 14
SUBTITLE_CHARS = 115  # what fits in WIDTH at 11px


@dataclass(frozen=True)
class Bar:
    series: str  # "vinci" or "baseline": the color
    label: str  # what the bar is (e.g. "pigz -6 pipeline")
    value: float


@dataclass(frozen=True)
class Group:
    title: str
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    groups: tuple[Group, ...]
    log: bool = False  # log scale, for values spanning orders of magnitude (rebuild times)


def _fmt(value: float, unit: str) -> str:
    if value >= 100:
        text = f"{value:.0f}"
    elif value >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}"


def _panel(panel: Panel, top: int) -> tuple[list[str], int]:
    out: list[str] = []
    y = top
    out.append(
        f'<text x="8" y="{y + 14}" font-size="14" font-weight="bold">{escape(panel.title)}</text>'
    )
    y += 26
    values = [b.value for g in panel.groups for b in g.bars if b.value > 0]
    if not values:
        return out, y
    hi = max(values)
    lo = min(values)
    plot_w = WIDTH - LABEL_W - 90

    def scale(v: float) -> float:
        if v <= 0:
            return 0.0
        if panel.log:
            floor = 10 ** math.floor(math.log10(lo))
            ceil = 10 ** math.ceil(math.log10(hi))
            return (
                plot_w
                * (math.log10(v) - math.log10(floor))
                / max(1e-9, math.log10(ceil) - math.log10(floor))
            )
        return plot_w * v / hi

    for group in panel.groups:
        out.append(
            f'<text x="8" y="{y + 11}" font-size="12" font-weight="bold">'
            f"{escape(group.title)}</text>"
        )
        y += 16
        for bar in group.bars:
            w = max(1.0, scale(bar.value))
            color = COLORS.get(bar.series, "#888888")
            out.append(
                f'<text x="{LABEL_W - 6}" y="{y + 11}" font-size="11" text-anchor="end">'
                f"{escape(bar.label)}</text>"
            )
            out.append(
                f'<rect x="{LABEL_W}" y="{y}" width="{w:.1f}" height="{BAR_H}" fill="{color}"/>'
            )
            out.append(
                f'<text x="{LABEL_W + w + 4:.1f}" y="{y + 11}" font-size="11">'
                f"{escape(_fmt(bar.value, panel.unit))}</text>"
            )
            y += BAR_H + GAP
        y += GROUP_GAP - GAP
    if panel.log:
        out.append(
            f'<text x="{LABEL_W}" y="{y + 8}" font-size="10" fill="#555555">log scale</text>'
        )
        y += 14
    return out, y + 8


def render(panels: list[Panel], title: str, subtitle: str) -> str:
    body: list[str] = [
        f'<text x="8" y="20" font-size="16" font-weight="bold">{escape(title)}</text>',
    ]
    y = 38
    for line in textwrap.wrap(subtitle, SUBTITLE_CHARS):
        body.append(f'<text x="8" y="{y}" font-size="11" fill="#555555">{escape(line)}</text>')
        y += 14
    y += 2
    for panel in panels:
        lines, y = _panel(panel, y)
        body.extend(lines)
    legend_y = y + 4
    body.append(f'<rect x="8" y="{legend_y}" width="12" height="12" fill="{COLORS["vinci"]}"/>')
    body.append(f'<text x="24" y="{legend_y + 10}" font-size="11">vinci</text>')
    body.append(f'<rect x="80" y="{legend_y}" width="12" height="12" fill="{COLORS["baseline"]}"/>')
    body.append(
        f'<text x="96" y="{legend_y + 10}" font-size="11">baseline (same run, alternated)</text>'
    )
    height = legend_y + 24
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">'
        f'\n<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>\n'
        + "\n".join(body)
        + "\n</svg>\n"
    )
