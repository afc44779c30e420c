"""Playground Pilot tests: the real model process on the tiny model (two turns, stop,
clear), and a scripted client for the cases that need no model (no adapter, a model that
does not load, the settings dialog)."""

from __future__ import annotations

import json
import queue
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual.widgets import Input

from engine.data.formats import Example
from engine.model.generation import Sampling
from engine.playground.server import PlaygroundTarget
from tests.engine.test_playground import make_adapter_run
from tests.tui.conftest import SAMPLE, SIZE, FakeBackend, settle, wait_until
from tui.app import TunedeckApp
from tui.backend_engine import EngineBackend
from tui.dialogs.error import ErrorDialog
from tui.dialogs.generation_settings import GenerationSettingsDialog
from tui.playground_client import PlaygroundClient
from tui.screens.playground import PlaygroundScreen
from tui.widgets.transcript import Transcript

LOAD_TIMEOUT_S = 120.0
RUN_ID = "20250301-101500-c0ffee"


class ScriptedClient(PlaygroundClient):
    """Answers without a model: each side says what it is, word by word, then `done`."""

    def __init__(self, tuned: bool = True, fatal: str | None = None) -> None:
        super().__init__([])
        self.tuned, self.fatal = tuned, fatal
        self.requests: list[dict[str, Any]] = []
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def start(self) -> None:
        if self.fatal:
            self.lines.put({"type": "error", "message": self.fatal, "hint": "hint", "fatal": True})
            return
        ready = {"type": "ready", "model": "smollm2-135m", "device": "cpu", "tuned": self.tuned}
        self.lines.put({**ready, "context": 8192, "seconds": 3.2})

    def events(self):
        while (event := self.lines.get()) is not None:
            yield event

    def send(self, request: dict[str, Any]) -> None:
        self.requests.append(request)
        if request["type"] != "generate":
            return
        about = {"id": request["id"], "side": request["side"]}
        words = f"The {request['side']} answer to turn {request['id']}.".split(" ")
        for word in words:
            self.lines.put({"type": "token", "text": word + " ", **about})
        done = {"tokens": 12, "seconds": 0.5, "finished": True, "cancelled": False, "dropped": 0}
        self.lines.put({"type": "done", "text": " ".join(words), **done, **about})

    def close(self) -> None:
        self._closed = True
        self.lines.put(None)


class ScriptedBackend(FakeBackend):
    """The fake backend with a scripted playground process."""

    def __init__(self, tuned: bool = True, fatal: str | None = None) -> None:
        super().__init__()
        self.clients: list[ScriptedClient] = []
        self.tuned, self.fatal = tuned, fatal

    def playground_target(
        self, run_dir: Path | None, model: str, examples: Sequence[Example]
    ) -> PlaygroundTarget:
        target = super().playground_target(run_dir, model, examples)
        if not self.tuned:
            return target
        run = Path("/fake-runs") / RUN_ID
        return replace(target, adapter=run / "adapter", run_dir=run)

    def open_playground(self, target: Any) -> PlaygroundClient:
        client = ScriptedClient(self.tuned, self.fatal)
        client.start()
        self.clients.append(client)
        return client


async def open_playground(pilot) -> PlaygroundScreen:
    """Open the playground once the Data step has loaded the sample data (its system
    prompt). From here on no `settle`: the worker reading the model process never ends."""
    await settle(pilot)
    await pilot.press("t")
    screen = pilot.app.screen
    assert isinstance(screen, PlaygroundScreen)
    await wait_until(pilot, lambda: screen.ready, LOAD_TIMEOUT_S)
    return screen


async def send(pilot, screen: PlaygroundScreen, text: str) -> None:
    prompt = screen.query_one("#pg-prompt", Input)
    prompt.focus()
    prompt.value = text
    await pilot.press("enter")
    await wait_until(pilot, lambda: not screen.busy, LOAD_TIMEOUT_S)


def turns(screen: PlaygroundScreen, side: str) -> list[str]:
    return screen.query_one(f"#pg-{side}", Transcript).turns


async def test_two_turns_with_the_real_model_then_stop_and_clear(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    # The tiny model with room for a long answer: 150 tokens took it 0.3 s, which could end
    # before escape arrived; 3,000 take seconds (same weights, RoPE needs no table).
    model_dir = tmp_path / "tiny-long-context"
    shutil.copytree(tiny_model_dir, model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 4096}))
    run_dir = make_adapter_run(model_dir, tmp_path)
    app = TunedeckApp(EngineBackend(), SAMPLE, str(model_dir))
    async with app.run_test(size=SIZE) as pilot:
        app.wizard.run_dir = run_dir
        screen = await open_playground(pilot)
        assert screen.tuned and run_dir.name in str(screen.query_one("#pg-tuned").border_title)
        system = screen.query_one("#pg-system", Input).value
        assert system.startswith("You are the support assistant for Northwind Cloud.")
        screen.settings = Sampling(max_new_tokens=12)

        await send(pilot, screen, "My invoice is wrong.")
        await send(pilot, screen, "And the app crashes.")
        histories = screen.conversation.histories
        for side in ("base", "tuned"):
            shown = turns(screen, side)
            assert shown[0] == "My invoice is wrong." and shown[2] == "And the app crashes."
            assert [m["role"] for m in histories[side]] == ["user", "assistant"] * 2
        assert histories["base"][1] != histories["tuned"][1]  # the adapter shows
        assert "12 tokens" in str(screen.query(".turn.-assistant").last().border_subtitle)

        # A long answer streams (text shows before it is done) and escape stops it.
        screen.settings = Sampling(max_new_tokens=3000)
        screen.query_one("#pg-prompt", Input).value = "Tell me more."
        await pilot.press("enter")
        base = screen.query_one("#pg-base", Transcript)
        await wait_until(pilot, lambda: bool(base.answer_text) and screen.busy, LOAD_TIMEOUT_S)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not screen.busy, LOAD_TIMEOUT_S)
        assert "stopped" in str(base.query(".turn.-assistant").last().border_subtitle)
        assert app.screen is screen  # escape stopped the answer; it did not go back

        screen.settings = Sampling(max_new_tokens=12)
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert turns(screen, "base") == turns(screen, "tuned") == []
        assert screen.conversation.histories == {"base": [], "tuned": []}
        await send(pilot, screen, "Hello again.")
        tuned = screen.conversation.histories["tuned"]
        assert len(tuned) == 2  # the process still answers after a clear
    assert screen.client is not None and screen.client.process is not None
    assert screen.client.process.poll() is not None  # quitting the app ended the process


async def test_without_an_adapter_only_the_base_model_answers() -> None:
    backend = ScriptedBackend(tuned=False)
    app = TunedeckApp(backend, SAMPLE, "smollm2-135m")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_playground(pilot)
        assert "no adapter yet" in str(screen.query_one("#pg-tuned").border_title)
        await send(pilot, screen, "Hi")
        await pilot.pause()
        assert turns(screen, "base") == ["Hi", "The base answer to turn 1."]
        assert turns(screen, "tuned") == []
        assert "No run with an adapter yet" in str(screen.query_one("#pg-tuned .note").content)
        (request,) = backend.clients[0].requests
        assert request["side"] == "base" and request["system"].startswith("You are the support")
        await pilot.press("escape")  # nothing to stop: back to the wizard
        assert app.current_mode == "data"


async def test_both_sides_keep_their_own_history() -> None:
    backend = ScriptedBackend()
    app = TunedeckApp(backend, SAMPLE, "smollm2-135m")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_playground(pilot)
        await send(pilot, screen, "First")
        await send(pilot, screen, "Second")
        last = {r["side"]: r["messages"] for r in backend.clients[0].requests[-2:]}
        assert last["tuned"][1] == {"role": "assistant", "content": "The tuned answer to turn 1."}
        assert last["base"][1] == {"role": "assistant", "content": "The base answer to turn 1."}
        assert [m["content"] for m in last["base"][::2]] == ["First", "Second"]


async def test_a_model_that_does_not_load_is_an_error_dialog() -> None:
    app = TunedeckApp(ScriptedBackend(fatal="unknown model 'x'"), SAMPLE, "x")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorDialog))
        await pilot.press("escape")
        screen = app.screen
        assert isinstance(screen, PlaygroundScreen) and not screen.ready
        assert "Could not load the model" in str(screen.query_one("#pg-status").content)
        screen.query_one("#pg-prompt", Input).value = "hello?"
        await pilot.press("enter")
        assert screen.conversation.pending == set()  # nothing was sent to a model not there


async def test_the_settings_dialog_checks_and_applies_values() -> None:
    backend = ScriptedBackend()
    app = TunedeckApp(backend, SAMPLE, "smollm2-135m")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_playground(pilot)
        await pilot.press("ctrl+g")
        dialog = app.screen
        assert isinstance(dialog, GenerationSettingsDialog)
        dialog.query_one("#setting-top_p", Input).value = "2"
        await pilot.press("enter")
        assert app.screen is dialog and "top_p" in str(dialog.query_one("#settings-error").content)
        values = {"max_new_tokens": "64", "temperature": "0.7", "top_p": "0.9", "seed": "7"}
        for name, value in values.items():
            dialog.query_one(f"#setting-{name}", Input).value = value
        await pilot.press("enter")
        assert app.screen is screen and screen.settings == Sampling(64, 0.7, 0.9, 7)
        assert "temperature 0.7" in str(screen.query_one("#pg-settings").content)
        await send(pilot, screen, "Hi")
        assert backend.clients[0].requests[-1]["settings"] == {
            "max_new_tokens": 64, "temperature": 0.7, "top_p": 0.9, "seed": 7
        }  # fmt: skip


async def test_a_model_process_that_dies_is_an_error_and_ctrl_r_starts_another() -> None:
    backend = ScriptedBackend()
    app = TunedeckApp(backend, SAMPLE, "smollm2-135m")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_playground(pilot)
        backend.clients[0].lines.put({"type": "exited", "code": -9, "message": "Killed"})
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorDialog))
        await pilot.press("escape")
        assert not screen.ready and "ctrl+r" in str(screen.query_one("#pg-status").content)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.ready and len(backend.clients) == 2)
        assert backend.clients[0]._closed  # the old one is closed, not left behind
        await send(pilot, screen, "Back?")
        assert [r["side"] for r in backend.clients[1].requests] == ["base", "tuned"]
