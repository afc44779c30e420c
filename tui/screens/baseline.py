"""Wizard step 4, Baseline: the base model on the validation prompts, before training.

`b` creates the run directory from the wizard's config (config, data split; the worker
is not started) and starts a detached evaluation of the base systems only, zero-shot and
few-shot (engine.eval.baseline.BASELINE_OPTIONS). The screen follows its events like the
Evaluate step (tui.eval_follow), then shows the summary panel and one plain sentence on
whether a prompt alone already solves the task. The Train step later starts this very
run, and the Evaluate step reuses its base answers. `s` skips the step: the eval table
then has no base comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import ProgressBar, Static
from textual.worker import Worker, WorkerState, get_current_worker

from engine.config.build import TrainConfig
from engine.eval.baseline import baseline_verdict
from engine.eval.options import BASE_SYSTEMS
from engine.eval.review import EvalTable
from engine.runs.store import CREATED
from tui.backend import EvalBackend, ReviewBackend, RunsBackend
from tui.dialogs.error import ErrorDialog
from tui.eval_follow import EvalNews, FollowBackend, follow_eval, progress_text
from tui.paths import stylesheet
from tui.screens.base import WizardScreen
from tui.widgets.eval_summary import EvalSummary

INTRO = (
    "Before training, the base model answers the validation prompts as they are (zero-shot) "
    "and after a few training examples (few-shot). If a prompt alone already solves the "
    "task, fine-tuning has little to add."
)
SKIPPED = (
    "Baseline skipped: the eval table will lack the base comparison (the Evaluate step "
    "evaluates the fine-tuned model alone). b runs the baseline after all."
)


class BaselineScreen(WizardScreen):
    """Evaluate the base model (zero-shot, few-shot) on the validation split, or skip it.

    BINDINGS:
        b: run the baseline (creates the run directory; training starts at the Train step)
        s: skip the baseline (the eval table will have no base comparison)
        x: stop a running baseline (the answers so far are kept; b resumes)
    """

    MODE = "baseline"
    CSS_PATH = stylesheet("baseline")
    BINDINGS = [
        Binding("b", "run_baseline", "Run baseline"),
        Binding("s", "skip", "Skip"),
        Binding("x", "stop", "Stop"),
    ]

    @dataclass
    class RunChosen(Message):
        """The baseline evaluates this run (just created, or the wizard's own)."""

        run_dir: Path

    @dataclass
    class BaselineStarted(Message):
        """The detached evaluation started; its events follow from `offset`."""

        run_dir: Path
        offset: int

    @dataclass
    class EvalRead(Message):
        """News of the followed evaluation (only the newest progress counts)."""

        run_dir: Path
        news: EvalNews

    @dataclass
    class TableLoaded(Message):
        """The run's stored evaluation was read; `stale`: made for other data or model."""

        run_dir: Path
        table: EvalTable
        stale: bool

    def __init__(self) -> None:
        super().__init__()
        self.run_dir: Path | None = None
        self.running = False
        self.has_results = False

    def compose_body(self) -> ComposeResult:
        yield Static(INTRO, id="baseline-intro")
        yield Static("", id="baseline-status", markup=False)
        yield ProgressBar(id="baseline-progress", show_eta=False)
        yield EvalSummary("", id="baseline-summary", markup=False)
        yield Static("", id="baseline-note", markup=False)

    def on_mount(self) -> None:
        self.query_one("#baseline-progress").display = False
        self.query_one("#baseline-summary").display = False

    def sync(self) -> None:
        missing = self._missing()
        if missing:
            self._status(f"Complete {', '.join(missing)} first (ctrl+p goes back).")
        elif self.wizard.run_dir is None:
            self._status("Not run yet: b runs it, s skips it.")
        run_dir = self.wizard.run_dir
        changed = run_dir != self.run_dir
        if changed:
            self.run_dir, self.running, self.has_results = run_dir, False, False
            self.query_one("#baseline-summary").display = False
        if run_dir is not None and not self.running:
            self.load(run_dir, self.wizard.run_config(), follow=changed)
        self._show_note()
        self._update_done()

    def _missing(self) -> list[str]:
        done = self.tunedeck.steps_done
        return [s.title for s in self.tunedeck.steps_before(self.MODE) if s.mode not in done]

    def _status(self, text: str) -> None:
        self.query_one("#baseline-status", Static).update(text)

    def _show_note(self) -> None:
        if self.wizard.baseline_skipped:
            text = SKIPPED
        elif self.running:
            text = "x stops it (the answers so far are kept; b resumes). Training waits for it."
        elif self.has_results:
            text = (
                "ctrl+n: the Train step trains this run, and the Evaluate step reuses these "
                "base answers · b runs the baseline again (stored answers are kept)"
            )
        else:
            text = (
                "b runs it: the run directory (config, data split) is created now and the "
                "Train step trains that run · s skips it"
            )
        self.query_one("#baseline-note", Static).update(text)

    def _update_done(self) -> None:
        done = self.wizard.baseline_skipped or (self.has_results and not self.running)
        self.tunedeck.set_step_done(self.MODE, done)
        self.refresh_bindings()

    # -- running it ----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.running
        if action in ("run_baseline", "skip"):
            return None if self.running else True
        return True

    def action_run_baseline(self) -> None:
        missing = self._missing()
        split = self.wizard.split_result
        if missing:
            self.notify(f"Complete {', '.join(missing)} first.", severity="warning")
        elif self.running:
            self.notify("The baseline is running already.", severity="warning")
        elif split is not None and split.val_count == 0:
            self.notify(
                "There are no validation examples to evaluate on: skip the baseline (s), or "
                "hold out a validation share in the Split step.",
                severity="warning",
            )
        else:
            self._status("Creating the run directory (config, data split)…")
            self.start(self.wizard.run_config(), self.wizard.run_dir)

    @work(thread=True, exclusive=True, group="start", exit_on_error=False)
    def start(self, cfg: TrainConfig, current: Path | None) -> None:
        """Reuse the wizard's run when it still fits, else create one; start the eval."""
        runs: RunsBackend = self.backend
        evals: EvalBackend = self.backend
        run_dir = current if current is not None and self._reusable(current, cfg) else None
        if run_dir is None:
            run_dir = runs.create_run(cfg, self.wizard.reasons())
        self.post_message(self.RunChosen(run_dir))
        _, offset = runs.read_events(run_dir, 0)
        evals.start_baseline(run_dir)
        self.post_message(self.BaselineStarted(run_dir, offset))

    def _reusable(self, run_dir: Path, cfg: TrainConfig) -> bool:
        """A started run keeps its baseline; a created one only for the same data and model
        (a worker's: it reads the run)."""
        runs: RunsBackend = self.backend
        if runs.run_info(run_dir).state != CREATED:
            return True
        return runs.same_data_and_model(run_dir, cfg)

    @on(Worker.StateChanged)
    def _start_failed(self, event: Worker.StateChanged) -> None:
        """The error dialog comes from the base class; the status must not say "starting"."""
        if event.worker.group == "start" and event.state == WorkerState.ERROR:
            if self.run_dir is not None:
                self.load(self.run_dir, self.wizard.run_config())
            else:
                self._status("Not run yet: b runs it, s skips it.")

    @on(RunChosen)
    def run_chosen(self, message: RunChosen) -> None:
        self.wizard.run_dir = self.run_dir = message.run_dir
        self.wizard.baseline_skipped = False
        self.has_results = False
        self._status(f"Run {message.run_dir.name}: starting the evaluation…")
        self._show_note()
        self._update_done()

    @on(BaselineStarted)
    def baseline_started(self, message: BaselineStarted) -> None:
        if message.run_dir == self.run_dir:
            self._following(message.run_dir, message.offset)

    def _following(self, run_dir: Path, offset: int) -> None:
        self.running = True
        self.query_one("#baseline-progress").display = True
        self._status(f"Run {run_dir.name}: evaluating the base model (loading it)…")
        self._show_note()
        self._update_done()
        self.follow(run_dir, offset)

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def follow(self, run_dir: Path, offset: int) -> None:
        """Tail the evaluation's events until it ends (or its process dies)."""
        worker = get_current_worker()
        backend: FollowBackend = self.backend

        def report(news: EvalNews) -> None:
            self.post_message(self.EvalRead(run_dir, news))

        follow_eval(backend, run_dir, offset, report, lambda: worker.is_cancelled)

    @on(EvalRead)
    def eval_read(self, message: EvalRead) -> None:
        if message.run_dir != self.run_dir:
            return
        news = message.news
        for note in news.notes:
            self.notify(note, title="Baseline")
        if news.progress:
            event = news.progress
            total = int(event.get("total", 0)) or None
            self.query_one(ProgressBar).update(total=total, progress=int(event.get("done", 0)))
            self._status(f"Run {message.run_dir.name}: {progress_text(event)}")
        if news.ended:
            self._ended(message.run_dir, news.ended)

    def _ended(self, run_dir: Path, event: dict[str, Any]) -> None:
        self.running = False
        self.query_one("#baseline-progress").display = False
        if event["type"] == "eval_failed":
            error = str(event.get("error") or "the evaluation failed")
            self.app.push_screen(ErrorDialog(error, str(event.get("hint") or ""),
                                             "Baseline failed"))  # fmt: skip
        elif event["type"] == "eval_stopped":
            self.notify("Baseline stopped; the answers so far are kept (b resumes).")
        self._show_note()
        self.load(run_dir, self.wizard.run_config())

    def action_stop(self) -> None:
        if self.running and self.run_dir is not None:
            self.stop(self.run_dir)
            self.notify("Stopping after the current batch…")

    @work(thread=True, group="stop", exit_on_error=False)
    def stop(self, run_dir: Path) -> None:
        evals: EvalBackend = self.backend
        evals.stop_eval(run_dir)

    def action_skip(self) -> None:
        if self.running:
            self.notify("Stop the running baseline first (x).", severity="warning")
            return
        self.wizard.baseline_skipped = True
        self._show_note()
        self._update_done()

    # -- the results ---------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self, run_dir: Path, cfg: TrainConfig, follow: bool = False) -> None:
        """Read the run's stored evaluation, and whether it still fits the wizard's config;
        with `follow` (a run the screen has not shown yet), follow its running evaluation
        instead when there is one."""
        evals: EvalBackend = self.backend
        if follow and evals.eval_running(run_dir):
            self.post_message(self.BaselineStarted(run_dir, 0))
            return
        review: ReviewBackend = self.backend
        table = review.load_eval_table(run_dir)
        stale = not self._reusable(run_dir, cfg)
        self.post_message(self.TableLoaded(run_dir, table, stale))

    @on(TableLoaded)
    def table_loaded(self, message: TableLoaded) -> None:
        if message.run_dir != self.run_dir or self.running:
            return
        table, summary = message.table, message.table.summary
        systems = [s for s in table.systems if s in BASE_SYSTEMS]
        scored = summary is not None and any(s in summary.get("systems", {}) for s in systems)
        self.has_results = scored and not message.stale
        panel = self.query_one(EvalSummary)
        panel.display = self.has_results
        name = message.run_dir.name
        if message.stale:
            self._status(f"Run {name} was made for other data or another model: b runs the "
                         "baseline again on a new run.")  # fmt: skip
        elif self.has_results and summary is not None:
            panel.show(summary, systems, table.primary_name, None, baseline_verdict(summary))
            self._status(f"Run {name}: baseline of {summary.get('examples', '?')} validation "
                         "examples.")  # fmt: skip
        else:
            self._status(f"Run {name}: no baseline yet: b runs it, s skips it.")
        self._show_note()
        self._update_done()

    def leave_blocker(self) -> str | None:
        if self.running:
            return (
                "the baseline is evaluating: wait for it or stop it (x); training beside it "
                "would slow both down"
            )
        if self.MODE not in self.tunedeck.steps_done:
            return "run the baseline (b) or skip it (s)"
        return None
