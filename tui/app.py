"""The tunedeck Textual app: orchestrates the wizard's steps, nothing more.

Each step (tui/steps.py) is an app mode with its own screen, so a step keeps its state
while you visit others; Runs and Models are modes too. The app is handed a Backend (the
engine's protocols, tui.backend), so tests can inject a fake; it calls it only in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.reactive import var

from engine.config.build import with_overrides
from engine.core.events import ACTIVE_STATES
from engine.core.paths import sample_data_dir
from tui.backend import Backend
from tui.backend_engine import EngineBackend
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.error import ErrorDialog
from tui.dialogs.help import HelpDialog
from tui.notify import Notifier
from tui.paths import stylesheet
from tui.screens.base import WizardScreen
from tui.screens.models import ModelsScreen
from tui.screens.playground import PlaygroundScreen
from tui.screens.runs import RunsScreen
from tui.steps import STEPS, Step
from tui.terminal import HANGUP_EXIT_CODE, watch_terminal
from tui.wizard import Wizard

DEFAULT_SAMPLE = "support_tickets.jsonl"


class TunedeckApp(App[None]):
    """Fine-tuning wizard: Data → Split → Hyperparameters → Baseline → Train → Evaluate →
    Export; Runs and Models aside.

    BINDINGS:
        ctrl+n / ctrl+p: next / previous step;  r: Runs;  m: Models;  t: Playground;
        ?: help;  q: quit
    """

    TITLE = "tunedeck"
    ENABLE_COMMAND_PALETTE = False
    CSS_PATH = [stylesheet(name) for name in ("app", "dialogs")]
    BINDINGS = [
        Binding("ctrl+n", "next_step", "Next step"),
        Binding("ctrl+p", "previous_step", "Prev step"),
        Binding("r", "show_runs", "Runs"),
        Binding("m", "show_models", "Models", show=False),
        Binding("t", "show_playground", "Playground", show=False),
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    steps_done: var[frozenset[str]] = var(frozenset())
    """Modes of the completed steps; the step bar watches it."""

    def __init__(self, backend: Backend, data_path: Path, model: str, run: Path | None = None):
        super().__init__()
        self.backend = backend
        self.wizard = Wizard(data_path, model)
        self.steps: tuple[Step, ...] = STEPS
        self.start_run = run
        self.offer_runs = False
        self.last_mode = STEPS[0].mode
        self.left_running: list[str] = []
        """Ids of runs still training when the app quit (run_app says so)."""
        self.notifier = Notifier()
        """Announces watched runs that complete, fail or overfit (once each)."""

    async def on_mount(self) -> None:
        for step in self.steps:
            self.add_mode(step.mode, step.screen)
        self.add_mode("runs", RunsScreen)
        self.add_mode("models", ModelsScreen)
        self.add_mode("playground", PlaygroundScreen)
        if self.start_run is not None:
            self.attach(self.start_run)
        elif (await asyncio.to_thread(self._busy_runs, evaluations=False))[0]:
            self.offer_runs = True
            self.switch_mode("runs")
        else:
            self.switch_mode(self.steps[0].mode)

    # -- steps ---------------------------------------------------------------------------

    def _step_index(self) -> int | None:
        modes = [s.mode for s in self.steps]
        return modes.index(self.current_mode) if self.current_mode in modes else None

    def steps_before(self, mode: str) -> list[Step]:
        modes = [s.mode for s in self.steps]
        return list(self.steps[: modes.index(mode)])

    def set_step_done(self, mode: str, done: bool) -> None:
        self.steps_done = self.steps_done | {mode} if done else self.steps_done - {mode}

    def data_changed(self) -> None:
        """A new dataset makes the split and everything after it stale."""
        self.steps_done = self.steps_done & {"data"}

    def split_changed(self) -> None:
        self.steps_done = self.steps_done - {"split", "hparams"}

    def action_next_step(self) -> None:
        index = self._step_index()
        if index is None:
            self.switch_mode(self.last_mode)
            return
        blocker = self.screen.leave_blocker() if isinstance(self.screen, WizardScreen) else None
        if blocker:
            self.notify(blocker, title="Not yet", severity="warning")
        elif index + 1 < len(self.steps):
            self.switch_mode(self.steps[index + 1].mode)

    def action_previous_step(self) -> None:
        index = self._step_index()
        if index is None:
            self.action_back()
        elif index > 0:
            self.switch_mode(self.steps[index - 1].mode)

    def action_goto_step(self, mode: str) -> None:
        missing = [s.title for s in self.steps_before(mode) if s.mode not in self.steps_done]
        if missing and mode != self.current_mode:
            self.notify(f"Complete {', '.join(missing)} first.", severity="warning")
        else:
            self.switch_mode(mode)

    # -- around the steps ----------------------------------------------------------------

    def _aside(self, mode: str) -> None:
        if self.current_mode in [s.mode for s in self.steps]:
            self.last_mode = self.current_mode
        self.switch_mode(mode)

    def action_show_runs(self) -> None:
        self._aside("runs")

    def action_show_models(self) -> None:
        self._aside("models")

    def action_show_playground(self) -> None:
        self._aside("playground")

    def action_back(self) -> None:
        self.switch_mode(self.last_mode)

    def attach(self, run_dir: Path) -> None:
        """Show a run on the Train screen: its history first, then live."""
        self.wizard.run_dir = run_dir
        self.switch_mode("train")

    def use_model(self, name: str) -> None:
        self.wizard.model = name
        self.wizard.config = with_overrides(self.wizard.config, model=name)

    def action_help(self) -> None:
        sections = [("Everywhere", self.BINDINGS)]
        sections += [(f"{n}. {s.title}", s.screen.BINDINGS) for n, s in enumerate(self.steps, 1)]
        sections += [("Runs", RunsScreen.BINDINGS), ("Models", ModelsScreen.BINDINGS)]
        sections += [("Playground", PlaygroundScreen.BINDINGS)]
        self.push_screen(HelpDialog(sections))

    # -- errors and quitting -------------------------------------------------------------

    def show_error(self, error: BaseException) -> None:
        """An error as a dialog (message and hint); unexpected ones are logged in full."""
        self.push_screen(ErrorDialog.of(error))

    def _busy_runs(self, evaluations: bool = True) -> tuple[list[str], list[str]]:
        """Ids of the runs training, and of those being evaluated (not looked for without
        `evaluations`). Reads run directories: call it in a thread."""
        runs = self.backend.list_runs()
        running = [info.id for info in runs if info.state in ACTIVE_STATES]
        if not evaluations:
            return running, []
        return running, [info.id for info in runs if self.backend.eval_running(info.dir)]

    async def action_quit(self) -> None:
        running, evaluating = await asyncio.to_thread(self._busy_runs)
        if not running and not evaluating:
            self._leave()
            return
        lines = []
        if running:
            lines.append(f"Run(s) {', '.join(running)} keep training in the background.")
        if evaluating:
            lines.append(f"The evaluation of {', '.join(evaluating)} keeps going too.")
        lines.append("Quitting stops neither; `tunedeck attach RUN` shows a run again.")
        self.push_screen(
            ConfirmDialog("Quit tunedeck?", " ".join(lines), "Quit", "Stay"),
            lambda yes: self._leave(running) if yes else None,
        )

    def _leave(self, running: list[str] | None = None) -> None:
        self.left_running = running or []
        self.backend.shutdown()
        self.exit()


def run_app(data: str | None = None, model: str | None = None, run: str | None = None) -> int:
    """Open the wizard (blocking) and return the exit code.

    Args:
        data: dataset to open first (default: the bundled sample data).
        model: model to start from (default: the embedded default model).
        run: a run id / prefix / path to open on the Train screen (`tunedeck attach`).
    """
    backend = EngineBackend()
    data_path = Path(data) if data else sample_data_dir() / DEFAULT_SAMPLE
    run_dir = backend.find_run(run) if run else None
    app = TunedeckApp(backend, data_path, model or backend.default_model, run_dir)

    def hang_up() -> None:  # the terminal closed: leave (runs go on without the viewer)
        with contextlib.suppress(RuntimeError):  # the app may be closing already
            app.call_from_thread(app.exit, None, HANGUP_EXIT_CODE)

    watcher = watch_terminal(sys.__stdin__.fileno(), hang_up) if sys.__stdin__ else None
    try:
        app.run()
    finally:
        if watcher is not None:
            watcher.set()
    if app.return_code == HANGUP_EXIT_CODE:
        return HANGUP_EXIT_CODE
    for run_id in app.left_running:
        print(f"run {run_id} keeps training in the background: `tunedeck attach {run_id}`")
    return 0
