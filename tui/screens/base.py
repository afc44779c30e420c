"""What every wizard screen shares: the step bar on top, the footer below, the state.

A screen's body comes from `compose_body`. `sync` runs whenever the screen is shown again
(steps before it may have changed the wizard state); `leave_blocker` says why the wizard
cannot go on to the next step yet (None: it can). An exception escaping one of the
screen's workers becomes an error dialog (message and hint), and the app goes on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import on
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import Worker, WorkerState

from tui.widgets.step_bar import StepBar

if TYPE_CHECKING:
    from tui.backend import Backend
    from tui.host import WizardHost
    from tui.wizard import Wizard


class WizardScreen(Screen[None]):
    """Base of the step screens and the Runs / Models screens."""

    MODE: ClassVar[str] = ""
    """The app mode this screen is the base of (a step name, "runs" or "models")."""

    @property
    def tunedeck(self) -> WizardHost:
        """The app, as far as screens use it (tui.host)."""
        return cast("WizardHost", self.app)

    @property
    def wizard(self) -> Wizard:
        return self.tunedeck.wizard

    @property
    def backend(self) -> Backend:
        """The engine (tui.backend). Call it only in worker threads: each call may block.
        Where a screen calls it, a local typed with the domain protocol (`RunsBackend`,
        ...) says which part of the engine the screen uses."""
        return self.tunedeck.backend

    def compose(self) -> ComposeResult:
        yield StepBar(self.MODE, id="step-bar")
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        """The screen's own widgets, between the step bar and the footer."""
        yield from ()

    def on_screen_resume(self) -> None:
        self.sync()

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """A worker's exception (StateChanged does not bubble) becomes the error dialog."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.tunedeck.show_error(event.worker.error)

    def sync(self) -> None:
        """Catch up with the wizard state (called each time the screen is shown)."""

    def leave_blocker(self) -> str | None:
        """Why the next step cannot be reached yet, or None when it can."""
        return None
