"""Wizard step 5, Train: start the detached run and watch it live.

The run is a separate process (engine.runs.store starts it in its own session); this screen is
only a window onto its directory. A worker thread tails `events.jsonl` and `worker.log`
and posts each batch; attaching to a run replays its whole history first. Control goes
through the run directory too (engine.runs.store.request), so quitting the TUI — or losing the
SSH connection — never stops the run.

When the Baseline step created the run (directory and split, no worker), `s` starts that
run with the hyperparameters as they are now; if the data or the model changed since, a
new run starts and the baseline has to be rerun.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import ContentSwitcher, Log, Sparkline, Static
from textual.worker import get_current_worker

from engine.core.errors import TunedeckError
from engine.core.events import ACTIVE_STATES
from engine.runs.store import CREATED, RESUMABLE_STATES, RunInfo
from tui.backend import RunsBackend
from tui.backend_calls import OrderedCalls
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.error import ErrorDialog
from tui.paths import display_path, stylesheet
from tui.run_history import RunHistory
from tui.screens.base import WizardScreen
from tui.widgets.loss_chart import LossChart
from tui.widgets.run_stats import RunNumbers, RunStats

POLL_S = 0.5
"""How often the follower looks for new events: cheap (a stat and a read)."""
LOG_LINES = 400
METHODS = {"lora": "LoRA", "qlora": "QLoRA"}


class TrainScreen(WizardScreen):
    """Start a run from the wizard's config, or follow one attached from the Runs list.

    BINDINGS:
        s: start a run from steps 1-4 (the Baseline step's run when it made one)
        p: pause a running run (checkpoint, worker exits) / resume a paused or stopped one
        x: stop the run (asks first; a checkpoint is saved)
        c: save a checkpoint now
        v: evaluate validation loss now
    """

    MODE = "train"
    CSS_PATH = stylesheet("train")
    BINDINGS = [
        Binding("s", "start", "Start run"),
        Binding("p", "pause", "Pause"),
        Binding("p", "resume", "Resume"),
        Binding("x", "stop", "Stop"),
        Binding("c", "control('checkpoint')", "Checkpoint"),
        Binding("v", "control('evaluate')", "Eval now"),
    ]

    @dataclass
    class RunStarted(Message):
        """The run's directory exists and its worker is starting."""

        info: RunInfo
        stale_baseline: Path | None = None
        """The Baseline step's run, left unstarted: made for other data or another model."""

    @dataclass
    class RunRead(Message):
        """New events / log lines of the followed run, and its current status."""

        run_dir: Path
        events: list[dict[str, Any]]
        log_lines: list[str]
        info: RunInfo

    def __init__(self) -> None:
        super().__init__()
        self.run_dir: Path | None = None
        self.info: RunInfo | None = None
        self.history = RunHistory()
        self.replayed = False
        self.shown_gpus = ""
        """The followed run's history has been shown: later batches are live news."""

    def compose_body(self) -> ComposeResult:
        yield Static("", id="train-banner")
        with Horizontal(id="train-top"):
            with ContentSwitcher(id="train-main", initial="train-intro"):
                yield Static("", id="train-intro")
                yield LossChart(id="loss-chart")
            with Vertical(id="train-side"):
                yield RunStats(id="run-stats")
                yield Static("learning rate", id="lr-label")
                yield Sparkline([], id="lr-spark")
        yield Log(id="train-log", max_lines=LOG_LINES, auto_scroll=True)
        yield Static("", id="train-note")

    def on_mount(self) -> None:
        self.query_one("#train-banner").display = False

    def sync(self) -> None:
        self.look(self.wizard.run_dir)

    @work(thread=True, exclusive=True, group="look", exit_on_error=False)
    def look(self, run_dir: Path | None) -> None:
        """Find out whether the wizard's run was started (it reads the run), then show it."""
        self.app.call_from_thread(self._show_wizard_run, run_dir, self._created_run(run_dir))

    def _show_wizard_run(self, run_dir: Path | None, created: Path | None) -> None:
        """Follow the wizard's started run, or show the intro (`created`: the Baseline
        step's run, created and never started)."""
        if run_dir != self.wizard.run_dir:
            return  # the wizard moved on while the worker looked
        if run_dir is not None and created is None and run_dir != self.run_dir:
            self.attach(run_dir)
        elif run_dir is None or created is not None:
            self._back_to_intro()
            self.query_one("#train-intro", Static).update(self._intro(created))
            self.query_one("#train-note", Static).update(
                "s starts the run in the background: it keeps training when you quit "
                "tunedeck or lose the connection."
            )
        self.refresh_bindings()

    def _intro(self, created: Path | None) -> str:
        wizard = self.wizard
        missing = [s.title for s in self.tunedeck.steps_before(self.MODE)
                   if s.mode not in self.tunedeck.steps_done]  # fmt: skip
        if missing:
            return f"Complete {', '.join(missing)} first (ctrl+p goes back)."
        cfg = wizard.config
        split = wizard.split_result
        counts = f"{split.train_count} training / {split.val_count} validation" if split else ""
        return (
            f"Ready to train {cfg.model} with {METHODS[cfg.method]} on {counts} examples.\n"
            f"{cfg.epochs:g} epoch(s), learning rate {cfg.learning_rate:g}, LoRA r={cfg.lora.r}, "
            f"validation every {cfg.eval_steps} steps.\n\n"
            "Press s to start. The run is a background process: quitting tunedeck or losing "
            "SSH does not stop it; `tunedeck attach RUN` (or the Runs list) brings it back."
            + self._baseline_line(created)
        )

    def _baseline_line(self, created: Path | None) -> str:
        if created is None:
            return ""
        return (
            f"\n\nThe Baseline step's run {created.name} is the one trained, so its base "
            "answers are kept (a new run starts if the data or the model changed since)."
        )

    def _created_run(self, run_dir: Path | None) -> Path | None:
        """`run_dir` when the Baseline step created it and it never started (a worker's:
        it reads the run)."""
        runs: RunsBackend = self.backend
        if run_dir is None or runs.run_info(run_dir).state != CREATED:
            return None
        return run_dir

    def _back_to_intro(self) -> None:
        """Back to the intro: the wizard has no started run (anymore)."""
        if self.run_dir is not None:
            self.workers.cancel_group(self, "follow")
            self.run_dir, self.info = None, None
            self.query_one(ContentSwitcher).current = "train-intro"

    # -- starting and attaching --------------------------------------------------------------

    def action_start(self) -> None:
        missing = [s.title for s in self.tunedeck.steps_before(self.MODE)
                   if s.mode not in self.tunedeck.steps_done]  # fmt: skip
        if missing:
            self.notify(f"Complete {', '.join(missing)} first.", severity="warning")
            return
        if self.info is not None and self.info.state in ACTIVE_STATES:
            self.app.push_screen(
                ConfirmDialog(
                    "Another run is training",
                    f"Run {self.info.id} is {self.info.state}. Start a second run alongside "
                    "it? (On a CPU they share the cores and both slow down.)",
                    "Start another",
                    "Cancel",
                ),
                lambda yes: self.start(self.wizard.run_config()) if yes else None,
            )
            return
        self.start(self.wizard.run_config())

    @work(thread=True, exclusive=True, group="start", exit_on_error=False)
    def start(self, cfg: Any) -> None:
        """Start the Baseline step's run if it still fits, else create a run and start it."""
        runs: RunsBackend = self.backend
        created = self._created_run(self.wizard.run_dir)
        if created is not None and runs.same_data_and_model(created, cfg):
            info = runs.start_created_run(created, cfg, self.wizard.reasons())
            self.post_message(self.RunStarted(info))
        else:
            info = runs.start_run(cfg, self.wizard.reasons())
            self.post_message(self.RunStarted(info, created))

    @on(RunStarted)
    def run_started(self, message: RunStarted) -> None:
        self.notify(f"Run {message.info.id} started in the background.")
        if message.stale_baseline is not None:
            self.tunedeck.set_step_done("baseline", False)
            self.notify(
                f"The data or the model changed since the baseline (run "
                f"{message.stale_baseline.name}), so this is a new run: run the Baseline "
                "step again to compare with the base model.",
                title="Baseline out of date",
                severity="warning",
            )
        self.wizard.run_dir = message.info.dir
        self.attach(message.info.dir)

    def attach(self, run_dir: Path) -> None:
        """Show `run_dir` from its first event on, then follow it live."""
        self.run_dir = run_dir
        self.info = None
        self.history = RunHistory()
        self.replayed = False
        self.shown_gpus = ""
        self.query_one(ContentSwitcher).current = "loss-chart"
        self.query_one(LossChart).set_series([], [], None)
        self.query_one(Log).clear()
        self.query_one(Sparkline).data = []
        self.query_one("#train-banner").display = False
        self.follow(run_dir)

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def follow(self, run_dir: Path) -> None:
        """Tail the run's events and log; each poll's news goes out as one batch."""
        runs: RunsBackend = self.backend
        worker = get_current_worker()
        offset = log_offset = 0
        last: RunInfo | None = None
        while not worker.is_cancelled:
            events, offset = runs.read_events(run_dir, offset)
            lines, log_offset = runs.read_log(run_dir, log_offset)
            info = runs.run_info(run_dir)
            if events or lines or info != last:
                self.post_message(self.RunRead(run_dir, events, lines, info))
                last = info
            time.sleep(POLL_S)

    @on(RunRead)
    def show_run(self, message: RunRead) -> None:
        if message.run_dir != self.run_dir:
            return  # a batch from the run shown before
        state_changed = self.info is None or self.info.state != message.info.state
        if self.replayed:  # the first batch is the replayed history: not news
            before = self.info.state if self.info else None
            self.tunedeck.notifier.watch(self.app, message.info, before, message.events)
        self.replayed = True
        self.info = message.info
        history = self.history
        history.ingest(message.events)
        history.state = message.info.state
        self.query_one(LossChart).set_series(history.train, history.val, history.best)
        if history.lr:
            self.query_one(Sparkline).data = history.lr
        if message.log_lines:
            self.query_one(Log).write_lines(message.log_lines)
        self.query_one(RunStats).numbers = _numbers(message.info, history)
        self._show_banner()
        if state_changed or history.gpus != self.shown_gpus:
            self.shown_gpus = history.gpus
            self.refresh_bindings()
            self._show_note(message.info)
            if message.info.state == "completed" and message.run_dir == self.wizard.run_dir:
                self.tunedeck.set_step_done("train", True)

    def _show_note(self, info: RunInfo) -> None:
        if info.state in ACTIVE_STATES:
            text = f"q leaves it training; back with `tunedeck attach {info.id}`"
        elif info.state == "completed":
            text = f"Run {info.id} completed; kept adapter: {display_path(info.dir / 'adapter')}"
        else:
            text = f"Run {info.id} is {info.state}; p resumes it from its newest checkpoint"
        if self.history.gpus:  # e.g. pinned to one of several GPUs (engine.model.devices)
            text += f"  ·  {self.history.gpus}"
        self.query_one("#train-note", Static).update(text)

    def _show_banner(self) -> None:
        banner = self.history.banner
        widget = self.query_one("#train-banner", Static)
        widget.display = banner is not None
        if banner is not None:
            widget.update(banner.text)
            widget.set_classes(f"-{banner.kind.replace('_', '-')}")

    # -- control ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        state = self.info.state if self.info else None
        if action in ("pause", "stop", "control"):
            return state in ("running", "queued")
        if action == "resume":
            return state in RESUMABLE_STATES
        return True

    def action_pause(self) -> None:
        self._request("pause")

    def action_control(self, action: str) -> None:
        self._request(action)

    def action_stop(self) -> None:
        if self.run_dir is None:
            return
        run_id = self.run_dir.name
        self.app.push_screen(
            ConfirmDialog(
                "Stop the run?",
                f"Run {run_id} saves a checkpoint and stops at its next step. The best "
                "adapter so far is kept, and p resumes the run later.",
                "Stop it",
                "Keep training",
                danger=True,
            ),
            lambda yes: self._request("stop") if yes else None,
        )

    def _request(self, action: str) -> None:
        if self.run_dir is not None:
            self._control(self.run_dir, action)

    def action_resume(self) -> None:
        if self.run_dir is not None:
            self._control(self.run_dir, "resume")

    @cached_property
    def _controls(self) -> OrderedCalls[RunsBackend]:
        """Requests reach the run in the order the keys were pressed (checkpoint, stop)."""
        return OrderedCalls()

    def _control(self, run_dir: Path, action: str) -> None:
        """Ask the run's worker for `action` ("resume": start a new worker), in a worker."""

        def call(runs: RunsBackend) -> TunedeckError | None:
            try:
                if action == "resume":
                    runs.resume_run(run_dir)
                else:
                    runs.request(run_dir, action)  # type: ignore[arg-type]
            except TunedeckError as exc:
                return exc
            return None

        self._controls.put(call, lambda refused: self._controlled(action, refused))
        self.make_controls(self._controls)

    @work(thread=True, group="control", exit_on_error=False)
    def make_controls(self, controls: OrderedCalls[RunsBackend]) -> None:
        runs: RunsBackend = self.backend
        controls.run(runs, self.app)

    def _controlled(self, action: str, refused: TunedeckError | None) -> None:
        if refused is not None:
            self._refused(refused, f"Cannot {action} the run")
        elif action == "resume":
            self.notify("Resuming from the newest checkpoint.")
        else:
            self.notify(f"{action} requested: the worker acts at its next step.")

    def _refused(self, exc: TunedeckError, title: str) -> None:
        self.app.push_screen(ErrorDialog.of(exc, title))


def _numbers(info: RunInfo, history: RunHistory) -> RunNumbers:
    status = info.status
    latest = history.latest
    return RunNumbers(
        run_id=info.id,
        state=info.state,
        step=status.step if status else int(latest.get("step", 0)),
        max_steps=status.max_steps if status else None,
        epoch=status.epoch if status else latest.get("epoch"),
        train_loss=history.train[-1][1] if history.train else None,
        val_loss=history.val[-1][1] if history.val else None,
        best_val=history.best[1] if history.best else (status.best_val_loss if status else None),
        best_step=history.best[0] if history.best else (status.best_step if status else None),
        lr=latest.get("lr"),
        tokens_per_s=latest.get("tokens_per_s"),
        eta_s=latest.get("eta_s") if info.state == "running" else None,
        memory=latest.get("memory"),
    )
