"""Histogram of tokens per example (after the chat template), max_seq_len marked."""

from __future__ import annotations

from textual_plotext import PlotextPlot

BINS = 24
TAIL_FACTOR = 1.5
"""Lengths beyond TAIL_FACTOR x p99 are counted, not drawn: one pasted 10k-token example
would otherwise squeeze every other bar into the first column."""


class LengthHistogram(PlotextPlot):
    """Token lengths of a dataset; `show` draws them, `note` replaces them with a line."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lengths: list[int] = []
        self.max_seq_len: int | None = None
        self.caption = "token lengths: not counted yet"

    def on_mount(self) -> None:
        super().on_mount()
        self._draw()

    def show(self, lengths: list[int], max_seq_len: int, caption: str) -> None:
        """Draw `lengths` with a vertical line at `max_seq_len`."""
        self.lengths = sorted(lengths)
        self.max_seq_len = max_seq_len
        self.caption = caption
        self._draw()

    def note(self, caption: str) -> None:
        """No lengths to draw: show why (still counting, tokenizer unavailable)."""
        self.lengths = []
        self.max_seq_len = None
        self.caption = caption
        self._draw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.xlabel("tokens per example")
        if not self.lengths or self.max_seq_len is None:
            self.border_title = self.caption
            self.refresh()
            return
        p99 = self.lengths[max(int(0.99 * len(self.lengths)) - 1, 0)]
        cap = TAIL_FACTOR * p99
        shown = [n for n in self.lengths if n <= cap]
        hidden = len(self.lengths) - len(shown)
        title = self.caption
        if hidden:
            title += f" · {hidden} over {int(cap):,} not drawn (max {self.lengths[-1]:,})"
        plt.hist(shown, BINS)
        if self.max_seq_len <= cap:
            plt.vline(self.max_seq_len)
            plt.text("max_seq_len", x=self.max_seq_len, y=0, alignment="left")
        else:
            title += f" · max_seq_len {self.max_seq_len:,} →"  # beyond the right edge
        self.border_title = title  # a border title never gets dropped for want of width
        self.refresh()
