"""Training and validation loss against step, on the same axes.

Training loss is a braille line, validation loss stands out as "x" points and the best
validation point as "*": the markers differ (the legend shows them), so the chart reads
without colour. Series
colours come from CSS (component classes `loss-chart--train` / `loss-chart--val`).

Points arrive in batches as the run logs them; the chart redraws at most every
REDRAW_S seconds (a few frames a second is plenty over a slow SSH link).
"""

from __future__ import annotations

from typing import ClassVar

from textual_plotext import PlotextPlot

REDRAW_S = 0.25


class LossChart(PlotextPlot):
    """Loss curves of one run; feed it with `set_series`."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"loss-chart--train", "loss-chart--val"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.train: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []
        self.best: tuple[int, float] | None = None
        self.redraws = 0
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
        plt = self.plt
        plt.clear_data()
        plt.xlabel("step")
        plt.ylabel("loss")
        if not self.train and not self.val:
            plt.title("loss: waiting for the first logged step")
        else:
            plt.title("")
        if self.train:
            steps, losses = zip(*self.train, strict=True)
            plt.plot(steps, losses, marker="braille", label="train",
                     color=self._colour("loss-chart--train"))  # fmt: skip
        if self.val:
            steps, losses = zip(*self.val, strict=True)
            plt.scatter(steps, losses, marker="x", label="val",
                        color=self._colour("loss-chart--val"))  # fmt: skip
        if self.best is not None:
            plt.scatter([self.best[0]], [self.best[1]], marker="*", label="best",
                        color=self._colour("loss-chart--val"))  # fmt: skip
        self.refresh()
