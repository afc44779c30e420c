"""Desktop notifications when a watched run completes, fails or starts overfitting.

Terminals differ in how a program asks for a desktop notification, and none can be asked
whether it supports one, so the protocol is chosen from the environment:

- OSC 9 (`ESC ] 9 ; text BEL`): iTerm2, WezTerm, Ghostty. iTerm2 sets `LC_TERMINAL`,
  which ssh forwards with the locale, so this works on a remote GPU box too.
- OSC 99 (`ESC ] 99 ; ; text ESC \\`): kitty's own protocol.
- OSC 777 (`ESC ] 777 ; notify ; title ; body BEL`): foot and rxvt-unicode.
- Otherwise the bell, which most terminals turn into an alert or a mark on the tab.

Inside tmux the sequence is wrapped in tmux's DCS passthrough (it reaches the outer
terminal when tmux has `set -g allow-passthrough on`). `TUNEDECK_NOTIFY=0` turns the
terminal notification off (the toast inside tunedeck stays); `TUNEDECK_NOTIFY=osc9`,
`osc99`, `osc777` or `bell` picks one where detection guesses wrong.

Each (run, kind) is announced once per session: a run replayed on attach, or watched by
two screens, never notifies twice.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from engine.runs.store import RunInfo

Protocol = Literal["osc9", "osc99", "osc777", "bell", "off"]
Kind = Literal["completed", "failed", "overfitting"]

ENV_SWITCH = "TUNEDECK_NOTIFY"
OFF_VALUES = ("0", "off", "no", "false", "none")
FORCED: tuple[Protocol, ...] = ("osc9", "osc99", "osc777", "bell")
OSC9_PROGRAMS = ("iTerm.app", "WezTerm", "ghostty")
OSC9_TERMS = ("xterm-ghostty", "wezterm")
OSC9_MARKERS = ("ITERM_SESSION_ID", "WEZTERM_PANE", "GHOSTTY_RESOURCES_DIR")
"""Variables the terminal sets for its shells (kept inside tmux started from it)."""
OSC777_TERMS = ("foot", "rxvt-unicode")
MAX_TEXT = 200
"""Notification text is cut here: a desktop banner shows a line or two."""
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
"""Control characters (ESC, BEL, C1): a worker's error text must not end the sequence."""


@dataclass(frozen=True)
class Notice:
    """One thing worth telling the user about a run."""

    run_id: str
    kind: Kind
    title: str
    body: str


# ---------------------------------------------------------------------------
# Pure: the protocol for an environment, and its bytes
# ---------------------------------------------------------------------------


def protocol_for(env: Mapping[str, str]) -> Protocol:
    """The notification protocol of the terminal `env` describes (or the user's choice)."""
    choice = env.get(ENV_SWITCH, "").strip().lower()
    if choice in OFF_VALUES:
        return "off"
    for forced in FORCED:
        if choice == forced:
            return forced
    term, program = env.get("TERM", ""), env.get("TERM_PROGRAM", "")
    if program in OSC9_PROGRAMS or env.get("LC_TERMINAL") == "iTerm2":
        return "osc9"
    if env.get("KITTY_WINDOW_ID") or term == "xterm-kitty":
        return "osc99"
    if term in OSC9_TERMS or any(env.get(name) for name in OSC9_MARKERS):
        return "osc9"
    if term.startswith(OSC777_TERMS):
        return "osc777"
    return "bell"


def clean(text: str, separators: bool = False) -> str:
    """Text safe inside an escape sequence: no control characters, not too long.

    Args:
        separators: also replace `;`, which separates OSC 777's fields.
    """
    text = _UNSAFE.sub(" ", text).strip()
    if separators:
        text = text.replace(";", ",")
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def sequence(protocol: Protocol, title: str, body: str) -> str:
    """The escape sequence that shows `title` / `body` ("" for the bell and off)."""
    if protocol == "osc9":
        return f"\x1b]9;{clean(f'{title}: {body}')}\x07"
    if protocol == "osc99":
        return f"\x1b]99;;{clean(f'{title}: {body}')}\x1b\\"
    if protocol == "osc777":
        return f"\x1b]777;notify;{clean(title, True)};{clean(body, True)}\x07"
    return ""


def tmux_wrap(text: str) -> str:
    """`text` passed through tmux to the outer terminal (DCS passthrough, ESC doubled)."""
    return "\x1bPtmux;" + text.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def terminal_output(env: Mapping[str, str], title: str, body: str) -> tuple[Protocol, str]:
    """(protocol, what to write to the terminal) for a notification in `env`."""
    protocol = protocol_for(env)
    text = sequence(protocol, title, body)
    if text and env.get("TMUX"):
        text = tmux_wrap(text)
    return protocol, text


def run_notices(
    run_id: str, before: str | None, after: str, events: list[dict[str, Any]], detail: str = ""
) -> list[Notice]:
    """What a run's change from state `before` to `after`, and its new events, announce.

    Args:
        before: the state seen last time; None when the run is seen for the first time
            (its history is not news: nothing about the state is announced).
        events: events that arrived live (not the replay of the history).
        detail: a few words for the completion notice (best validation loss).
    """
    notices: list[Notice] = []
    for event in events:
        if event.get("type") == "warning" and event.get("code") == "overfitting":
            message = str(event.get("message") or "validation loss is rising")
            notices.append(Notice(run_id, "overfitting", "tunedeck: overfitting", message))
    if before is None or before == after:
        return notices
    if after == "completed":
        body = f"run {run_id} completed" + (f"; {detail}" if detail else "")
        notices.append(Notice(run_id, "completed", "tunedeck: run completed", body))
    elif after.startswith("failed") and not before.startswith("failed"):
        notices.append(Notice(run_id, "failed", "tunedeck: run failed", f"run {run_id} {after}"))
    return notices


# ---------------------------------------------------------------------------
# Sending
# ---------------------------------------------------------------------------


def write_to_terminal(app: Any, text: str) -> bool:
    """Write raw `text` to the app's terminal, in order with its frames; False if none.

    Textual 8 has no public call for raw output: App.bell and App.copy_to_clipboard write
    through the driver the same way. A headless app (tests) has no terminal.
    """
    driver = getattr(app, "_driver", None)
    if app.is_headless or driver is None:
        return False
    driver.write(text)
    return True


class Notifier:
    """Sends each run's notices once: a toast in the app and a terminal notification."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.sent: list[Notice] = []
        """Every notice sent this session, in order."""
        self._seen: set[tuple[str, str]] = set()
        self._muted: set[str] = set()

    def watch(
        self, app: Any, info: RunInfo, before: str | None, events: list[dict[str, Any]]
    ) -> None:
        """Announce what changed in a run since state `before` (see run_notices)."""
        status = info.status
        detail = ""
        if status is not None and status.best_val_loss is not None:
            detail = f"best val loss {status.best_val_loss:.4f} at step {status.best_step}"
        for notice in run_notices(info.id, before, info.state, events, detail):
            self.send(app, notice)

    def mute(self, run_id: str, muted: bool = True) -> None:
        """Announce nothing about `run_id` (being deleted: its vanishing is no failure)."""
        if muted:
            self._muted.add(run_id)
        else:
            self._muted.discard(run_id)

    def send(self, app: Any, notice: Notice) -> bool:
        """Toast and terminal notification, unless this run already announced this kind."""
        key = (notice.run_id, notice.kind)
        if key in self._seen or notice.run_id in self._muted:
            return False
        self._seen.add(key)
        self.sent.append(notice)
        severity = "information" if notice.kind == "completed" else "warning"
        # markup off: a worker's error text may hold square brackets.
        app.notify(notice.body, title=notice.title, severity=severity, timeout=10, markup=False)
        protocol, text = terminal_output(self.env, notice.title, notice.body)
        if protocol == "bell":
            app.bell()
        elif text:
            write_to_terminal(app, text)
        return True
