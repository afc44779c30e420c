"""The numbers of a run at a glance: state, progress, losses, learning rate, speed, peak memory.

`numbers` is the one reactive fed by the screen; the progress bar is bound to the derived
`step` / `total` reactives (`data_bind`), and the labels are derived in `watch_numbers`.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import ProgressBar, Static


@dataclass(frozen=True)
class RunNumbers:
    """One snapshot of a run's figures (None: not known yet)."""

    run_id: str = ""
    state: str = "not started"
    step: int = 0
    max_steps: int | None = None
    epoch: float | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    best_val: float | None = None
    best_step: int | None = None
    lr: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    memory: int | None = None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def _loss(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"


def numbers_text(n: RunNumbers) -> str:
    """The figures as aligned lines (the same in colour and without)."""
    steps = f"{n.step}/{n.max_steps}" if n.max_steps else str(n.step)
    epoch = f"{n.epoch:.2f}" if n.epoch is not None else "-"
    best = f"{_loss(n.best_val)} @ {n.best_step}" if n.best_val is not None else "-"
    lr = f"{n.lr:.2e}" if n.lr is not None else "-"
    speed = f"{n.tokens_per_s:,.0f}" if n.tokens_per_s is not None else "-"
    return "\n".join(
        [
            f"step      {steps:<10} epoch {epoch}",
            f"train     {_loss(n.train_loss)}",
            f"val       {_loss(n.val_loss)}",
            f"best val  {best}",
            f"lr        {lr}",
            f"tokens/s  {speed}",
            f"eta       {_duration(n.eta_s)}",
            f"peak mem  {_size(n.memory)}",
        ]
    )


class RunStats(Vertical):
    """State line, progress bar, and the figures of `numbers`."""

    numbers: reactive[RunNumbers] = reactive(RunNumbers)
    """The latest snapshot; everything shown derives from it."""
    step: reactive[float] = reactive(0.0)
    """Optimizer steps done (bound to the progress bar)."""
    total: reactive[float | None] = reactive(None)
    """Planned optimizer steps; None shows an indeterminate bar."""

    def compose(self) -> ComposeResult:
        yield Static("", id="run-state", markup=False)
        yield ProgressBar(id="run-progress", show_eta=False).data_bind(
            progress=RunStats.step, total=RunStats.total
        )
        yield Static("", id="run-numbers", markup=False)

    def watch_numbers(self, numbers: RunNumbers) -> None:
        self.step = float(numbers.step)
        if numbers.max_steps:
            self.total = float(numbers.max_steps)
        else:  # an animated bar only while a worker is getting ready; else a still one
            self.total = None if numbers.state in ("queued", "running") else 1.0
        label = f"{numbers.run_id}  " if numbers.run_id else ""
        self.query_one("#run-state", Static).update(f"{label}[{numbers.state}]")
        self.query_one("#run-numbers", Static).update(numbers_text(numbers))
