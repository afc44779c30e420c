"""tui.notify: the protocol per terminal, the escape sequences, tmux, the off switch, once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.core.events import RunStatus
from engine.runs.store import RunInfo
from tui.notify import Notice, Notifier, protocol_for, run_notices, sequence, terminal_output


@pytest.mark.parametrize(
    ("env", "protocol"),
    [
        ({"TERM_PROGRAM": "iTerm.app"}, "osc9"),
        ({"TERM": "xterm-256color", "LC_TERMINAL": "iTerm2"}, "osc9"),  # over ssh
        ({"TERM_PROGRAM": "WezTerm"}, "osc9"),
        ({"TERM_PROGRAM": "ghostty", "TERM": "xterm-ghostty"}, "osc9"),
        ({"TERM": "xterm-ghostty"}, "osc9"),  # ssh keeps TERM
        ({"TERM": "tmux-256color", "TERM_PROGRAM": "tmux", "WEZTERM_PANE": "3"}, "osc9"),
        ({"TERM": "xterm-kitty", "KITTY_WINDOW_ID": "1"}, "osc99"),
        ({"TERM": "foot"}, "osc777"),
        ({"TERM": "rxvt-unicode-256color"}, "osc777"),
        ({"TERM": "xterm-256color"}, "bell"),
        ({"TERM": "xterm-256color", "WT_SESSION": "x"}, "bell"),  # OSC 9 is not a toast there
        ({}, "bell"),
        ({"TERM_PROGRAM": "iTerm.app", "TUNEDECK_NOTIFY": "0"}, "off"),
        ({"TERM_PROGRAM": "iTerm.app", "TUNEDECK_NOTIFY": "off"}, "off"),
        ({"TERM": "xterm", "TUNEDECK_NOTIFY": "OSC777"}, "osc777"),
        ({"TERM_PROGRAM": "iTerm.app", "TUNEDECK_NOTIFY": "bell"}, "bell"),
        ({"TERM_PROGRAM": "iTerm.app", "TUNEDECK_NOTIFY": "1"}, "osc9"),  # on: detect
    ],
)
def test_protocol_per_terminal(env: dict[str, str], protocol: str) -> None:
    assert protocol_for(env) == protocol


def test_sequences() -> None:
    assert sequence("osc9", "tunedeck", "run X completed") == (
        "\x1b]9;tunedeck: run X completed\x07"
    )
    assert sequence("osc99", "t", "b") == "\x1b]99;;t: b\x1b\\"
    assert sequence("osc777", "a;b", "c;d") == "\x1b]777;notify;a,b;c,d\x07"
    assert sequence("bell", "t", "b") == sequence("off", "t", "b") == ""


def test_control_characters_cannot_end_the_sequence_early() -> None:
    text = sequence("osc9", "tunedeck", "boom\x07\x1b]52;c;ZXZpbA==\x07\x9b\n" + "x" * 500)
    assert text.startswith("\x1b]9;") and text.endswith("\x07")
    body = text[4:-1]
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in body)
    assert len(body) <= 200 and body.endswith("…")


def test_inside_tmux_the_sequence_passes_through() -> None:
    env = {"TERM_PROGRAM": "tmux", "TMUX": "/tmp/tmux-0/default,1,0", "LC_TERMINAL": "iTerm2"}
    protocol, text = terminal_output(env, "t", "b")
    assert protocol == "osc9"
    assert text == "\x1bPtmux;\x1b\x1b]9;t: b\x07\x1b\\"
    kitty = {"TMUX": "x", "KITTY_WINDOW_ID": "2"}
    assert terminal_output(kitty, "t", "b")[1] == "\x1bPtmux;\x1b\x1b]99;;t: b\x1b\x1b\\\x1b\\"
    assert terminal_output({"TMUX": "x"}, "t", "b") == ("bell", "")


def test_what_a_state_change_announces() -> None:
    warning = {"type": "warning", "code": "overfitting", "message": "val loss rose"}
    assert run_notices("r", None, "completed", []) == []  # first sight: not news
    assert run_notices("r", "running", "running", []) == []
    assert [n.kind for n in run_notices("r", "running", "completed", [warning])] == [
        "overfitting",
        "completed",
    ]
    assert [n.kind for n in run_notices("r", "queued", "failed (worker died)", [])] == ["failed"]
    assert run_notices("r", "failed", "failed (worker died)", []) == []
    assert run_notices("r", "running", "stopped", []) == []  # the user asked for that
    done = run_notices("r", "running", "completed", [], "best val loss 0.5")[0]
    assert done.body == "run r completed; best val loss 0.5"


@dataclass
class FakeDriver:
    written: list[str] = field(default_factory=list)

    def write(self, data: str) -> None:
        self.written.append(data)


@dataclass
class FakeApp:
    """The three things Notifier uses of a Textual app."""

    is_headless: bool = False
    _driver: FakeDriver = field(default_factory=FakeDriver)
    bells: int = 0
    toasts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def bell(self) -> None:
        self.bells += 1

    def notify(self, message: str, **kwargs: Any) -> None:
        self.toasts.append((message, kwargs))


def info(state: str) -> RunInfo:
    status = RunStatus(state=state, best_val_loss=0.61, best_step=30)
    return RunInfo("run-1", Path("/runs/run-1"), state, status, 0.0)


def test_each_run_and_kind_is_sent_once() -> None:
    app = FakeApp()
    notifier = Notifier(env={"TERM_PROGRAM": "iTerm.app"})
    notifier.watch(app, info("completed"), "running", [])
    notifier.watch(app, info("completed"), "running", [])  # a second viewer saw it too
    assert [n.kind for n in notifier.sent] == ["completed"]
    assert app._driver.written == [
        "\x1b]9;tunedeck: run completed: run run-1 completed; best val loss 0.6100 at step 30\x07"
    ]
    assert app.toasts[0][1]["title"] == "tunedeck: run completed" and app.bells == 0
    notifier.watch(app, info("failed"), "running", [])  # another kind still goes out
    assert [n.kind for n in notifier.sent] == ["completed", "failed"]


def test_bell_off_switch_headless_and_muted() -> None:
    app = FakeApp()
    Notifier(env={"TERM": "xterm"}).send(app, Notice("r", "failed", "t", "b"))
    assert app.bells == 1 and app._driver.written == [] and len(app.toasts) == 1

    quiet = FakeApp()
    Notifier(env={"TERM_PROGRAM": "iTerm.app", "TUNEDECK_NOTIFY": "0"}).send(
        quiet, Notice("r", "failed", "t", "b")
    )
    assert quiet.bells == 0 and quiet._driver.written == [] and len(quiet.toasts) == 1

    headless = FakeApp(is_headless=True)
    Notifier(env={"TERM_PROGRAM": "iTerm.app"}).send(headless, Notice("r", "failed", "t", "b"))
    assert headless._driver.written == []

    muted = Notifier(env={})
    muted.mute("r")
    assert not muted.send(FakeApp(), Notice("r", "failed", "t", "b"))
    muted.mute("r", muted=False)
    assert muted.send(FakeApp(), Notice("r", "failed", "t", "b"))
