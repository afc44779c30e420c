"""Training and validation loss against step, on the same axes.

Training loss is a braille line, validation loss stands out as "x" points and the best
validation point as "*": the markers differ (the legend shows them), so the chart reads
without colour. Series
colours come from CSS (component classes `loss-chart--train` / `loss-chart--val`).

Points arrive in batches as the run logs them; the chart redraws at most every
REDRAW_S seconds (a few frames a second is plenty over a slow SSH link). The widget keeps
every point, but draws at most a few per braille column (`min_max_downsample`): plotext
rebuilds its canvas from all the points it is given on every render, ~0.2 s for 25,000
points on a slow CPU, which held key presses up while a long run streamed in.
"""

from __future__ import annotations

from operator import itemgetter
from typing import ClassVar

from textual_plotext import PlotextPlot

REDRAW_S = 0.25
DOTS_PER_CELL = 2
"""Braille draws two points across per terminal cell."""

Point = tuple[int, float]


def min_max_downsample(points: list[Point], buckets: int) -> list[Point]:
    """Some of `points` that draw the same curve at a resolution of `buckets` columns.

    The points (in step order) are cut into `buckets` runs of consecutive points; each run
    keeps its lowest and its highest loss, in step order, so spikes and the y range
    survive; the first and the last point are always kept (the newest is the one people
    look at). At most 2 x `buckets` + 2 points. Runs are cut by index, not by step: a run
    logs its metrics at evenly spaced steps. O(n), the inner loops in C (slices, min, max).
    """
    if buckets < 1 or len(points) <= 2 * buckets:
        return list(points)
    kept: list[Point] = [points[0]]
    size = len(points) / buckets
    loss = itemgetter(1)
    for bucket in range(buckets):
        run = points[round(bucket * size) : round((bucket + 1) * size)]
        low, high = min(run, key=loss), max(run, key=loss)
        for point in sorted({low, high}):
            if point != kept[-1]:
                kept.append(point)
    if kept[-1] != points[-1]:
        kept.append(points[-1])
    return kept


class LossChart(PlotextPlot):
    """Loss curves of one run; feed it with `set_series`."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"loss-chart--train", "loss-chart--val"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.train: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []
        self.best: tuple[int, float] | None = None
        self.redraws = 0
        self.drawn: tuple[int, int] = (0, 0)
        """(training, validation) points given to plotext at the last redraw."""
        self._dirty = True

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(REDRAW_S, self._redraw_if_dirty)

    def set_series(
        self,
        train: list[tuple[int, float]],
        val: list[tuple[int, float]],
        best: tuple[int, float] | None,
    ) -> None:
        """Replace the curves; the chart redraws at its next tick."""
        self.train, self.val, self.best = list(train), list(val), best
        self._dirty = True

    def _redraw_if_dirty(self) -> None:
        if self._dirty:
            self._dirty = False
            self.redraws += 1
            self._draw()

    def _colour(self, component: str) -> tuple[int, int, int] | str:
        colour = self.get_component_rich_style(component).color
        return colour.get_truecolor().rgb if colour is not None else "default"  # type: ignore[return-value]

    def _draw(self) -> None:
        # Before the first layout the width is 0: draw for a wide terminal meanwhile.
        buckets = (self.size.width or 200) * DOTS_PER_CELL
        train = min_max_downsample(self.train, buckets)
        val = min_max_downsample(self.val, buckets)
        self.drawn = (len(train), len(val))
        plt = self.plt
        plt.clear_data()
        plt.xlabel("step")
        plt.ylabel("loss")
        if not self.train and not self.val:
            plt.title("loss: waiting for the first logged step")
        else:
            plt.title("")
        if train:
            steps, losses = zip(*train, strict=True)
            plt.plot(steps, losses, marker="braille", label="train",
                     color=self._colour("loss-chart--train"))  # fmt: skip
        if val:
            steps, losses = zip(*val, strict=True)
            plt.scatter(steps, losses, marker="x", label="val",
                        color=self._colour("loss-chart--val"))  # fmt: skip
        if self.best is not None:
            plt.scatter([self.best[0]], [self.best[1]], marker="*", label="best",
                        color=self._colour("loss-chart--val"))  # fmt: skip
        self.refresh()
