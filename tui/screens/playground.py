"""Playground: chat with the base and the fine-tuned model side by side, answers streamed.

The model runs in a child process (engine.playground.server, through tui.playground_client) that
loads the base weights once, with the run's adapter beside them. Enter sends the prompt
to both sides; each side keeps its own history of its own answers, so a second turn
continues two different conversations (tui.playground_session.Conversation). A thread
worker reads the child's events with their tokens batched (FLUSH_S,
tui.playground_session.batch_tokens), so the transcripts redraw a few times a second
over SSH.

Which model: the wizard's run (Train step, or a run opened from Runs); without one, the
newest run that has an adapter; without any, the wizard's model alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, Static

from engine.core.errors import TunedeckError
from engine.model.generation import PLAYGROUND, Sampling
from engine.playground.server import SIDES, PlaygroundTarget
from tui.backend import PlaygroundBackend
from tui.dialogs.generation_settings import GenerationSettingsDialog
from tui.paths import stylesheet
from tui.playground_client import PlaygroundClient
from tui.playground_session import Conversation, StreamedText, batch_tokens
from tui.screens.base import WizardScreen
from tui.widgets.transcript import Transcript, answer_line


def model_label(model: str) -> str:
    """A model as a short name: a directory or file by its last part."""
    return Path(model).name if "/" in model or model.endswith(".gguf") else model


class PlaygroundScreen(WizardScreen):
    """Two transcripts (base | fine-tuned), a system prompt, a prompt line.

    BINDINGS:
        enter: send the prompt to both models    escape: stop answering (else: back)
        ctrl+l: clear the conversation    ctrl+g: generation settings
        ctrl+r: reload the model (a newer adapter, another run)
    """

    MODE = "playground"
    CSS_PATH = stylesheet("playground")
    BINDINGS = [
        Binding("escape", "stop", "Stop"),
        Binding("escape", "back", "Back"),
        Binding("ctrl+l", "clear", "Clear"),
        Binding("ctrl+g", "settings", "Settings"),
        Binding("ctrl+r", "reload", "Reload model"),
    ]

    @dataclass
    class Streamed(Message):
        """Text one side wrote since the last message (tokens batched by the reader)."""

        client: PlaygroundClient
        id: Any
        side: str
        text: str

    @dataclass
    class ModelEvent(Message):
        """Any other line of the model process: progress, ready, done, error, exited."""

        client: PlaygroundClient
        event: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self.client: PlaygroundClient | None = None
        self.target: PlaygroundTarget | None = None
        self.ready = False
        self.tuned = False
        self.load_failed = False
        """The process said it cannot load the model (its exit then needs no second word)."""
        self.settings = PLAYGROUND
        self.conversation = Conversation()
        self.loading_since = 0.0
        self.loading_stage = ""
        self._clock: Timer | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="pg-status", markup=False)
        system = Input(placeholder="none: the chat template's default", id="pg-system")
        system.border_title = "System prompt"
        yield system
        yield Static("", id="pg-settings", markup=False)
        with Horizontal(id="pg-columns"):
            yield Transcript(id="pg-base")
            yield Transcript(id="pg-tuned")
        prompt = Input(placeholder="Ask both models (enter sends)", id="pg-prompt")
        prompt.border_title = "Prompt"
        yield prompt

    def on_mount(self) -> None:
        self._clock = self.set_interval(1.0, self._tick, pause=True)
        self._show_settings()

    def on_unmount(self) -> None:
        if self.client is not None:
            self.client.close()  # the model's memory goes with the screen

    def sync(self) -> None:
        self.choose_target(force=False)
        self.query_one("#pg-prompt", Input).focus()

    def transcript(self, side: str) -> Transcript:
        return self.query_one(f"#pg-{side}", Transcript)

    @property
    def busy(self) -> bool:
        return self.conversation.busy

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.busy
        if action == "back":
            return not self.busy
        return True

    # -- the model process ------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="target", exit_on_error=False)
    def choose_target(self, force: bool) -> None:
        """Work out what to load (reads the run's config and data) off the UI thread."""
        examples = self.wizard.dataset.examples if self.wizard.dataset else ()
        backend: PlaygroundBackend = self.backend
        target = backend.playground_target(self.wizard.run_dir, self.wizard.model, examples)
        self.app.call_from_thread(self._use_target, target, force)

    def _use_target(self, target: PlaygroundTarget, force: bool) -> None:
        if target == self.target and self.client is not None and not force:
            return
        if self.client is not None:
            self.client.close()
            self.client = None
        self.target = target
        self._reset_conversation()
        system = self.query_one("#pg-system", Input)
        system.value = target.system
        system.cursor_position = 0  # show where the prompt starts
        self._titles(target)
        self.ready = self.tuned = self.load_failed = False
        self.open_model(target)

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def open_model(self, target: PlaygroundTarget) -> None:
        """Start the model process for `target` off the UI thread (spawning takes a moment)."""
        backend: PlaygroundBackend = self.backend
        try:
            client = backend.open_playground(target)
        except (TunedeckError, OSError) as exc:
            self.app.call_from_thread(self._open_failed, exc)
            return
        self.app.call_from_thread(self._opened, target, client)

    def _open_failed(self, exc: Exception) -> None:
        self._status("Could not start the model process: ctrl+r tries again.", error=True)
        self.tunedeck.show_error(exc)

    def _opened(self, target: PlaygroundTarget, client: PlaygroundClient) -> None:
        if target != self.target or self.client is not None or not self.is_attached:
            client.close()  # another target, or the screen went, while it started
            return
        self.client = client
        self.loading_since, self.loading_stage = time.monotonic(), ""
        self._tick()
        if self._clock is not None:
            self._clock.resume()
        self.follow(self.client)

    def _titles(self, target: PlaygroundTarget) -> None:
        self.transcript("base").border_title = f"Base · {model_label(target.model)}"
        if target.adapter is None:
            self.transcript("tuned").border_title = "Fine-tuned · no adapter yet"
        else:
            name = target.run_dir.name if target.run_dir else model_label(str(target.adapter))
            self.transcript("tuned").border_title = f"Fine-tuned · run {name}"

    @work(thread=True, exclusive=True, group="model", exit_on_error=False)
    def follow(self, client: PlaygroundClient) -> None:
        """Read the child's events; tokens are batched per answer, at most every FLUSH_S."""
        for item in batch_tokens(client.events()):
            if isinstance(item, StreamedText):
                self.post_message(self.Streamed(client, item.id, item.side, item.text))
            else:
                self.post_message(self.ModelEvent(client, item))

    def _tick(self) -> None:
        """While loading: `Loading smollm2-135m … 4 s` (the stage when there is one)."""
        if self.ready or self.load_failed or self.target is None:
            return
        seconds = time.monotonic() - self.loading_since
        stage = f" ({self.loading_stage})" if self.loading_stage else ""
        self._status(f"Loading {model_label(self.target.model)}{stage} … {seconds:.0f} s")

    def _status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#pg-status", Static)
        status.update(text)
        status.set_class(error, "-error")

    # -- what the model says ----------------------------------------------------------------

    @on(Streamed)
    def streamed(self, message: Streamed) -> None:
        if message.client is self.client and self.conversation.awaits(message.id, message.side):
            self.transcript(message.side).append(message.text)

    @on(ModelEvent)
    def model_event(self, message: ModelEvent) -> None:
        if message.client is not self.client:
            return  # a process we closed: its last lines do not matter
        event = message.event
        kind = event.get("type")
        if kind == "progress":
            self.loading_stage = str(event.get("stage", ""))
            self._tick()
        elif kind == "ready":
            self._ready(event)
        elif kind == "done":
            self._done(event)
        elif kind == "error":
            self._error(event)
        elif kind == "exited":
            self._exited(event)

    def _ready(self, event: dict[str, Any]) -> None:
        assert self.target is not None
        self.ready, self.tuned = True, bool(event.get("tuned"))
        if self._clock is not None:
            self._clock.pause()
        where = f"run {self.target.run_dir.name}" if self.target.run_dir else "no run yet"
        self._status(
            f"{model_label(self.target.model)} on {event.get('device', '?')} · {where} · "
            f"loaded in {float(event.get('seconds', 0)):.1f} s · enter asks "
            + ("both models" if self.tuned else "the base model")
        )
        self._why_no_tuned()

    def _why_no_tuned(self) -> None:
        """A note in the fine-tuned column when there is no adapter to answer with."""
        if self.tuned or self.target is None:
            return
        reason = (
            f"Run {self.target.run_dir.name} has no adapter yet (it saves one at its "
            "first validation step): only the base model answers. ctrl+r reloads."
            if self.target.run_dir
            else "No run with an adapter yet: only the base model answers. Train one, "
            "or open a run from Runs (r), then come back."
        )
        self.transcript("tuned").note(reason)

    def _done(self, event: dict[str, Any]) -> None:
        side, text = str(event.get("side")), str(event.get("text", ""))
        if not self.conversation.answered(event.get("id"), side, text):
            return  # an answer of a conversation cleared since
        self.transcript(side).finish(text, answer_line(event))
        self.refresh_bindings()

    def _error(self, event: dict[str, Any]) -> None:
        message, hint = str(event.get("message", "")), str(event.get("hint", ""))
        if event.get("fatal"):
            self.load_failed = True
            if self._clock is not None:
                self._clock.pause()
            self._status(f"Could not load the model: {message}", error=True)
            self.tunedeck.show_error(TunedeckError(message, hint))
            return
        side = str(event.get("side"))
        # An awaited answer failed: its question stays on screen, not in what the model sees.
        if self.conversation.failed(event.get("id"), side):
            self.refresh_bindings()
        side = side if side in SIDES else "base"
        self.transcript(side).note(f"{message}" + (f" — {hint}" if hint else ""), error=True)

    def _exited(self, event: dict[str, Any]) -> None:
        self.ready = False
        for side in self.conversation.abandon():
            self.transcript(side).note("(the model process ended)", error=True)
        self.refresh_bindings()
        if self.load_failed:
            return  # the error dialog said why already
        self._status("The model process ended: ctrl+r starts it again.", error=True)
        detail = str(event.get("message") or "")
        self.tunedeck.show_error(
            TunedeckError(
                f"the playground's model process ended (exit code {event.get('code')})",
                hint=detail.splitlines()[-1] if detail else "ctrl+r starts it again",
            )
        )

    # -- what the user does -----------------------------------------------------------------

    @on(Input.Submitted, "#pg-system")
    def system_entered(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one("#pg-prompt", Input).focus()

    @on(Input.Submitted, "#pg-prompt")
    def prompt_entered(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            return
        if not self.ready or self.client is None:
            waiting = "did not load: ctrl+r tries again" if self.load_failed else "is loading"
            self.notify(f"The model {waiting}.", severity="warning")
            return
        if self.busy:
            self.notify("Still answering: escape stops it.", severity="warning")
            return
        self.ask(text)
        event.input.value = ""

    def ask(self, text: str) -> None:
        """Send `text` as the next user turn to both sides (base only without adapter)."""
        assert self.client is not None
        turn = self.conversation.next_turn()
        system = self.query_one("#pg-system", Input).value
        for side in SIDES if self.tuned else ("base",):
            messages = self.conversation.ask(side, text)
            transcript = self.transcript(side)
            transcript.add_user(text)
            transcript.start_answer()
            try:
                self.client.generate(turn, side, system, messages, self.settings)
            except TunedeckError as exc:
                self.conversation.abandon()
                self.tunedeck.show_error(exc)
                break
        self.refresh_bindings()

    def action_back(self) -> None:
        self.tunedeck.action_back()

    def action_stop(self) -> None:
        if self.client is not None and self.busy:
            try:
                self.client.cancel()
            except TunedeckError as exc:
                self.tunedeck.show_error(exc)

    def action_clear(self) -> None:
        """Start the conversation over (an answer being written is stopped)."""
        self.action_stop()
        self._reset_conversation()
        if self.ready:
            self._why_no_tuned()
        self.query_one("#pg-prompt", Input).focus()

    def _reset_conversation(self) -> None:
        self.conversation.reset()
        for side in SIDES:
            self.transcript(side).clear()
        self.refresh_bindings()

    def action_settings(self) -> None:
        self.app.push_screen(GenerationSettingsDialog(self.settings), self._settings_chosen)

    def _settings_chosen(self, settings: Sampling | None) -> None:
        if settings is not None:
            self.settings = settings
            self._show_settings()

    def _show_settings(self) -> None:
        self.query_one("#pg-settings", Static).update(
            f"{self.settings.describe()}   (ctrl+g changes them; the next answer uses them)"
        )

    def action_reload(self) -> None:
        self.choose_target(force=True)
