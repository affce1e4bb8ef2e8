"""The ratios to objmount as a hand-written SVG bar chart (no plotting library): one
group of bars per table row, one bar per tool, from 1x outwards on a log scale."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape

COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")
LABEL_W, PLOT_W, MARGIN = 440, 520, 12
BAR_H, BAR_GAP, ROW_GAP, TITLE_H, AXIS_H = 7, 1, 7, 26, 22


@dataclass(frozen=True)
class ChartRow:
    label: str
    ratios: dict[str, float | None]  # tool -> its time / objmount's


@dataclass(frozen=True)
class ChartSection:
    title: str
    rows: list[ChartRow]


def decades(values: list[float]) -> tuple[int, int]:
    """Powers of ten that bracket every value (at least 0.1x to 10x)."""
    lo = min([0.1, *values])
    hi = max([10.0, *values])
    return math.floor(math.log10(lo)), math.ceil(math.log10(hi))


def render_chart(sections: list[ChartSection], tools: list[str], baseline: str) -> str:
    values = [v for s in sections for r in s.rows for v in r.ratios.values()
              if v is not None and v > 0]
    lo, hi = decades(values)

    def x(value: float) -> float:
        return LABEL_W + PLOT_W * (math.log10(value) - lo) / (hi - lo)

    row_h = len(tools) * (BAR_H + BAR_GAP) + ROW_GAP
    out: list[str] = []
    y = MARGIN + 16
    legend = [f'<text x="{MARGIN}" y="{y}" font-weight="bold">time / {baseline} time '
              f'(log scale; left of 1x: faster than {baseline})</text>']
    lx = MARGIN
    y += 14
    for i, tool in enumerate(tools):
        legend.append(f'<rect x="{lx}" y="{y}" width="10" height="10" '
                      f'fill="{COLOURS[i % len(COLOURS)]}"/>')
        legend.append(f'<text x="{lx + 14}" y="{y + 9}">{escape(tool)}</text>')
        lx += 24 + 7 * len(tool)
    out += legend
    y += 18
    for section in sections:
        rows = [r for r in section.rows if any(v for v in r.ratios.values())]
        if not rows:
            continue
        out.append(f'<text x="{MARGIN}" y="{y + 16}" font-weight="bold">'
                   f'{escape(section.title)}</text>')
        y += TITLE_H
        top, bars = y, []
        for row in rows:
            bars.append(f'<text x="{LABEL_W - 8}" y="{y + row_h / 2 + 3:.1f}" '
                       f'text-anchor="end">{escape(row.label)}</text>')
            for i, tool in enumerate(tools):
                value = row.ratios.get(tool)
                by = y + i * (BAR_H + BAR_GAP)
                if value is None or value <= 0:
                    continue
                x0, x1 = sorted((x(1.0), x(value)))
                bars.append(f'<rect x="{x0:.1f}" y="{by}" width="{max(x1 - x0, 1):.1f}" '
                           f'height="{BAR_H}" fill="{COLOURS[i % len(COLOURS)]}">'
                           f'<title>{escape(tool)}: {value:.2f}x</title></rect>')
            y += row_h
        out += axis(top, y, lo, hi, x) + bars  # grid under the bars
        y += AXIS_H
    width, height = LABEL_W + PLOT_W + 2 * MARGIN + 20, y + MARGIN
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>', *out, "</svg>", ""])


def axis(top: float, bottom: float, lo: int, hi: int,
         x: Callable[[float], float]) -> list[str]:
    """Grid lines at every power of ten (1x darker), labels under the rows."""
    lines = []
    for power in range(lo, hi + 1):
        value = 10.0 ** power
        px = x(value)
        colour = "#444" if power == 0 else "#ccc"
        lines.append(f'<line x1="{px:.1f}" y1="{top - 2}" x2="{px:.1f}" y2="{bottom}" '
                     f'stroke="{colour}" stroke-width="1"/>')
        text = f"{value:g}x"
        lines.append(f'<text x="{px:.1f}" y="{bottom + 13}" text-anchor="middle" '
                     f'fill="#444">{text}</text>')
    return lines
