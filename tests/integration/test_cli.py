"""The `tunedeck` command line: help, version, honest refusals, clean errors, models."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine import __version__
from engine.model.resolve import DEFAULT_MODEL
from tests.conftest import REPO_ROOT
from tui.cli import COMMANDS, main

DESIGN_COMMANDS = {
    "lint", "split", "train", "runs", "attach", "stop", "pause", "resume", "eval", "export",
    "models", "review", "data", "compare",
}  # fmt: skip
EXTRA_COMMANDS = {"delete"}
"""Beyond DESIGN.md's list: run history (issue 7)."""


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script's module, in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args], cwd=REPO_ROOT, capture_output=True, text=True
    )


def test_every_design_subcommand_is_registered_with_help() -> None:
    assert set(COMMANDS) == DESIGN_COMMANDS | EXTRA_COMMANDS
    result = run_cli("--help")
    assert result.returncode == 0
    for command in DESIGN_COMMANDS | EXTRA_COMMANDS:
        assert command in result.stdout
    for command in DESIGN_COMMANDS | EXTRA_COMMANDS:
        sub = run_cli(command, "--help")
        assert sub.returncode == 0, sub.stderr
        assert f"usage: tunedeck {command}" in sub.stdout


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"tunedeck {__version__}"


def test_models_lists_the_default_offline(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["default"] == DEFAULT_MODEL
    default = next(m for m in listing["models"] if m["name"] == DEFAULT_MODEL)
    assert default["ready"] and default["kind"] == "embedded"
    assert main(["models"]) == 0
    assert DEFAULT_MODEL in capsys.readouterr().out


def test_wrong_model_name_is_a_clear_error_without_traceback() -> None:
    result = run_cli("models", "--prepare", "no-such-model")
    assert result.returncode == 2
    assert "error: unknown model 'no-such-model'" in result.stderr
    assert f"hint: available offline: {DEFAULT_MODEL}" in result.stderr
    assert "Traceback" not in result.stderr


def test_prepare_a_local_model_reports_ready(tiny_model_dir) -> None:
    result = run_cli("models", "--prepare", str(tiny_model_dir), "--json")
    assert result.returncode == 0, result.stderr
    last = json.loads(result.stdout.splitlines()[-1])
    assert last == {"type": "ready", "name": str(tiny_model_dir), "path": str(tiny_model_dir)}
