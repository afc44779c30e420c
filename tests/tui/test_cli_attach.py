"""`tunedeck attach RUN`: the Train screen on a terminal, text lines otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tui.cli import main


@pytest.fixture
def run_dir(tunedeck_home: Path) -> Path:
    run = tunedeck_home / "runs" / "20250301-101500-c0ffee"
    run.mkdir(parents=True)
    (run / "config.toml").write_text('model = "smollm2-135m"\n')
    return run


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    seen: list[tuple[str, object]] = []
    monkeypatch.setattr("tui.cli.runs.follow", lambda d: seen.append(("text", d)) or 0)
    monkeypatch.setattr("tui.app.run_app", lambda **kw: seen.append(("tui", kw)) or 0)
    return seen


def on_terminal(monkeypatch: pytest.MonkeyPatch, tty: bool) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: tty)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: tty)


def test_attach_on_a_terminal_opens_the_train_screen(run_dir, calls, monkeypatch) -> None:
    on_terminal(monkeypatch, True)
    assert main(["attach", "20250301"]) == 0
    assert calls == [("tui", {"run": str(run_dir)})]


def test_attach_with_text_or_without_a_terminal_prints_lines(run_dir, calls, monkeypatch) -> None:
    on_terminal(monkeypatch, True)
    assert main(["attach", "--text", "20250301"]) == 0
    on_terminal(monkeypatch, False)
    assert main(["attach", "20250301"]) == 0
    assert calls == [("text", run_dir), ("text", run_dir)]


def test_attach_to_an_unknown_run_says_so(calls, monkeypatch, capsys) -> None:
    on_terminal(monkeypatch, True)
    assert main(["attach", "nothing-like-it"]) == 2
    assert "no run matches 'nothing-like-it'" in capsys.readouterr().err
    assert calls == []
