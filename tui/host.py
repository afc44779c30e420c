"""What a screen may use of the app: a small protocol, so screens do not import the app.

`TunedeckApp` (tui.app) implements it; screens reach it through `WizardScreen.tunedeck`.
The app imports the screens, never the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from tui.backend import Backend
from tui.notify import Notifier
from tui.wizard import Wizard


class StepInfo(Protocol):
    """A wizard step as screens see it (tui.steps.Step)."""

    @property
    def mode(self) -> str: ...

    @property
    def title(self) -> str: ...


class WizardHost(Protocol):
    """The app's state and actions that the screens use."""

    wizard: Wizard
    backend: Backend
    notifier: Notifier
    offer_runs: bool

    @property
    def steps_done(self) -> frozenset[str]: ...

    def steps_before(self, mode: str) -> Sequence[StepInfo]:
        """The steps before `mode`, in order."""
        ...

    def set_step_done(self, mode: str, done: bool) -> None: ...

    def data_changed(self) -> None:
        """The dataset changed: later steps must be done again."""
        ...

    def split_changed(self) -> None: ...

    def use_model(self, name: str) -> None: ...

    def attach(self, run_dir: Path) -> None:
        """Show an existing run's Train step."""
        ...

    def action_back(self) -> None: ...

    def show_error(self, error: BaseException) -> None: ...
