"""Loss curves of several runs on one chart: a line per run's training loss, its
validation points beside it.

Each run has its own colour (component classes `compare-chart--run-1` .. `-6`, cycled) and
its own markers, so the chart reads without colour too: run A's training loss is a braille
line and its validation points `x`, run B's a line of `•` and `o`, and so on. The chart
has no legend of its own (it would hide the start of the curves, where losses are
highest): `series_key` gives the screen each run's markers to list beside its id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from textual_plotext import PlotextPlot

Point = tuple[int, float]
COLOURS = 6
TRAIN_MARKERS = ("braille", "dot", "·", "-", ":", "'")
VAL_MARKERS = ("x", "o", "+", "#", "@", "%")
GLYPHS = {"braille": "⠤⠤", "dot": "••"}
"""How a named plotext marker looks, for the key."""


def series_key(index: int) -> str:
    """The markers of the `index`-th run as text: `⠤⠤ train  x val`."""
    train = TRAIN_MARKERS[index % len(TRAIN_MARKERS)]
    val = VAL_MARKERS[index % len(VAL_MARKERS)]
    return f"{GLYPHS.get(train, train * 2)} train  {val} val"


@dataclass(frozen=True)
class RunCurves:
    """One run's series as the chart draws them."""

    tag: str
    """The run's short name on the screen (`A`, `B`, ...)."""
    train: Sequence[Point]
    val: Sequence[Point]


class CompareChart(PlotextPlot):
    """Training and validation loss of several runs; feed it with `show`."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        f"compare-chart--run-{index}" for index in range(1, COLOURS + 1)
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.runs: list[RunCurves] = []

    def show(self, runs: Sequence[RunCurves]) -> None:
        """Replace the curves and redraw."""
        self.runs = list(runs)
        self._draw()

    def run_style(self, index: int) -> Style:
        """The style (colour) of the `index`-th run's series, from CSS."""
        return self.get_component_rich_style(f"compare-chart--run-{index % COLOURS + 1}")

    def _colour(self, index: int) -> tuple[int, int, int] | str:
        colour = self.run_style(index).color
        return colour.get_truecolor().rgb if colour is not None else "default"  # type: ignore[return-value]

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.xlabel("step")
        plt.ylabel("loss")
        drawn = any(run.train or run.val for run in self.runs)
        plt.title("" if drawn else "no loss logged by these runs yet")
        for index, run in enumerate(self.runs):
            colour = self._colour(index)
            if run.train:
                steps, losses = zip(*run.train, strict=True)
                marker = TRAIN_MARKERS[index % len(TRAIN_MARKERS)]
                plt.plot(steps, losses, marker=marker, color=colour)
            if run.val:
                steps, losses = zip(*run.val, strict=True)
                marker = VAL_MARKERS[index % len(VAL_MARKERS)]
                plt.scatter(steps, losses, marker=marker, color=colour)
        self.refresh()
