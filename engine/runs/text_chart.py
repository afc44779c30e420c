"""A plain-text line chart for reports and logs (the TUI draws with plotext instead)."""

from __future__ import annotations

from collections.abc import Sequence

Point = tuple[float, float]


def line_chart(
    series: dict[str, Sequence[Point]],
    width: int = 64,
    height: int = 14,
    markers: str = "*o+x#",
) -> str:
    """Plot each series' (x, y) points on one grid with its own marker, plus a legend.

    Readable without colour: series are told apart by marker, later series drawn on top.
    """
    points = [p for values in series.values() for p in values]
    if not points:
        return "(no data)"
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    x_span, y_span = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    grid = [[" "] * width for _ in range(height)]
    for marker, values in zip(markers, series.values(), strict=False):
        for x, y in values:
            col = round((x - x0) / x_span * (width - 1))
            line = height - 1 - round((y - y0) / y_span * (height - 1))
            grid[line][col] = marker
    label_width = max(len(f"{y1:.3f}"), len(f"{y0:.3f}"))
    lines = []
    for index, cells in enumerate(grid):
        label = f"{y1:.3f}" if index == 0 else f"{y0:.3f}" if index == height - 1 else ""
        lines.append(f"{label:>{label_width}} |" + "".join(cells))
    lines.append(" " * label_width + " +" + "-" * width)
    lines.append(" " * label_width + f"  {x0:g}".ljust(width - len(f"{x1:g}")) + f"{x1:g}")
    legend = "   ".join(f"{m} {name}" for m, name in zip(markers, series, strict=False))
    lines.append(" " * label_width + "  " + legend)
    return "\n".join(lines)
