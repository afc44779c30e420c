"""What a run's events say so far, folded in as they arrive.

A viewer replays `events.jsonl` from the start and then feeds each new batch to
`RunHistory.ingest`. The loss curves follow `engine.core.events.metric_history`: after a
resume from step N, points the dead worker logged past N are superseded, so the curve
stays one continuous line. New points are appended (a batch costs what it holds); the
curves are rebuilt from all events only when a batch holds a resume, which is rare:
rebuilding every batch cost ~0.1 s of the UI thread per poll at 25,000 points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.core.events import ACTIVE_STATES, metric_history

BANNER_PRIORITY = ("failed", "nan_loss", "early_stop", "overfitting", "truncated_away")
"""Which notice wins the one banner line, most important first."""


@dataclass(frozen=True)
class Banner:
    """A notice worth a line of its own above the chart."""

    kind: str
    """One of BANNER_PRIORITY."""
    text: str


class RunHistory:
    """Loss curves, learning rates, the latest metrics and notices of one run."""

    def __init__(self) -> None:
        self._curve_events: list[dict[str, Any]] = []
        self.train: list[tuple[int, float]] = []
        """(step, training loss)."""
        self.val: list[tuple[int, float]] = []
        """(step, validation loss)."""
        self.lr: list[float] = []
        """Learning rate at each training point."""
        self.latest: dict[str, Any] = {}
        """The newest training metric event."""
        self.best: tuple[int, float] | None = None
        """(step, validation loss) of the best adapter so far."""
        self.keeps_last = False
        """The run keeps its last adapter (keep_adapter = "last"), not the best one."""
        self.state = "queued"
        self.gpus = ""
        """Which GPUs the worker trains on (the runtime event's words; "" on CPU)."""
        self.notices: dict[str, Banner] = {}
        self._overfitting: dict[str, Any] | None = None
        """The overfitting warning, re-worded when the run stops (no "stop now" then)."""
        self.event_count = 0

    @property
    def banner(self) -> Banner | None:
        """The most important notice, or None."""
        return next((self.notices[k] for k in BANNER_PRIORITY if k in self.notices), None)

    def ingest(self, events: list[dict[str, Any]]) -> None:
        """Fold in a batch of events (in file order)."""
        # New lists per batch (a copy of references, in C): a viewer that keeps the old
        # ones (a reactive compares old and new) sees the change.
        self.train, self.val, self.lr = list(self.train), list(self.val), list(self.lr)
        resumed = False
        for event in events:
            self.event_count += 1
            kind = event.get("type")
            if kind in ("metric", "resume"):
                self._curve_events.append(event)
                resumed = resumed or kind == "resume"
                if not resumed:  # after a resume the whole batch is rebuilt below
                    self._add_point(event)
            elif kind == "state":
                self._state(event)
            elif kind == "best":
                self.best = (int(event.get("step", 0)), float(event.get("val_loss", 0.0)))
            elif kind == "kept":
                self.keeps_last = event.get("rule") == "last"
            elif kind == "warning":
                self._warning(event)
            elif kind == "early_stop":
                self._early_stop(event)
            elif kind == "runtime":
                self.gpus = str(event.get("gpus") or "")
        if resumed:
            self._rebuild_curves()

    def _add_point(self, point: dict[str, Any]) -> None:
        """One metric event onto the curves (those without a numeric loss are skipped)."""
        if not _is_number(point.get("loss")):
            return
        if point.get("split") == "train":
            self.train.append((int(point["step"]), float(point["loss"])))
            if _is_number(point.get("lr")):
                self.lr.append(float(point["lr"]))
            self.latest = point
        elif point.get("split") == "val":
            self.val.append((int(point["step"]), float(point["loss"])))

    def _rebuild_curves(self) -> None:
        self.train, self.val, self.lr, self.latest = [], [], [], {}
        for point in metric_history(self._curve_events):
            self._add_point(point)

    def _state(self, event: dict[str, Any]) -> None:
        self.state = str(event.get("state", self.state))
        if self.state.startswith("failed"):
            error = event.get("error") or "the worker stopped without saying why"
            hint = f" — {event['hint']}" if event.get("hint") else ""
            self.notices["failed"] = Banner("failed", f"✗ Run failed: {error}{hint}")
        elif self.state in ("queued", "running"):
            self.notices.pop("failed", None)  # resumed
        if self._overfitting is not None:  # its advice depends on whether the run goes on
            self.notices["overfitting"] = Banner("overfitting", self._overfitting_text())

    def _overfitting_text(self) -> str:
        event = self._overfitting or {}
        message = event.get("message", "validation loss is rising")
        running = self.state in ACTIVE_STATES
        if self.keeps_last:
            kept = (
                "The run keeps its last adapter (keep_adapter = last: for labels, validation "
                "loss follows the rest of the answer)"
            )
            action = "; stop now (x) to keep this one" if running else ""
            return f"▲ Overfitting? {message}. {kept}{action}"
        best = f" The best adapter (step {self.best[0]}) is kept" if self.best else ""
        if running:
            action = "stop now (x) or let early stopping decide"
            return f"▲ Overfitting: {message}.{best and best + ';'} {action}"
        return f"▲ Overfitting: {message}.{best and best + '.'}"

    def _warning(self, event: dict[str, Any]) -> None:
        code = str(event.get("code", ""))
        step = event.get("step")
        if code == "nan_loss":
            text = (
                f"✗ Training loss became {event.get('loss')} at step {step}: lower the learning "
                "rate or add warmup; the last good checkpoint is kept"
            )
        elif code == "overfitting":
            self._overfitting = event
            text = self._overfitting_text()
        elif code == "truncated_away":
            text = f"! {event.get('message', 'examples dropped by truncation')}"
        else:
            return
        self.notices[code] = Banner(code, text)

    def _early_stop(self, event: dict[str, Any]) -> None:
        best = event.get("best_val_loss")
        best_text = f"{best:.4f}" if _is_number(best) else "?"
        self.notices["early_stop"] = Banner(
            "early_stop",
            f"■ Early stopping at step {event.get('step')}: no better validation loss for "
            f"{event.get('patience')} evaluations; "
            + (
                "the last adapter is kept (keep_adapter = last)"
                if event.get("kept") == "last"
                else f"the best adapter (step {event.get('best_step')}, val {best_text}) is kept"
            ),
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
