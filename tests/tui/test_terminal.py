"""The TUI leaves when its terminal hangs up, also when it is not the session leader."""

from __future__ import annotations

import os
import pty
import threading

from tui.terminal import hung_up, watch_terminal


def test_a_live_terminal_is_not_hung_up_and_a_closed_pty_is() -> None:
    master, slave = pty.openpty()
    try:
        assert not hung_up(slave)
        os.close(master)  # what closing the terminal window / the SSH session does
        assert hung_up(slave)
    finally:
        os.close(slave)


def test_the_watcher_calls_back_once_after_the_hangup() -> None:
    master, slave = pty.openpty()
    called = threading.Event()
    calls: list[int] = []

    def on_hangup() -> None:
        calls.append(1)
        called.set()

    stop = watch_terminal(slave, on_hangup, poll_s=0.05, force_after_s=None)
    try:
        assert stop is not None
        assert not called.wait(0.3)  # a live terminal: nothing happens
        os.close(master)
        assert called.wait(5)
        assert calls == [1]
    finally:
        if stop is not None:
            stop.set()
        os.close(slave)


def test_no_terminal_no_watcher(tmp_path) -> None:
    path = tmp_path / "not-a-tty"
    path.write_text("")
    with open(path) as handle:
        assert watch_terminal(handle.fileno(), lambda: None) is None
        assert not hung_up(handle.fileno())
