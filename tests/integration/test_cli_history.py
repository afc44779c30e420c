"""`tunedeck compare` and `tunedeck delete` as a user types them (fake finished runs)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from engine.core.control import worker_lock
from tests.engine.test_run_history import make_run, summary
from tui.cli import main

A = "20260101-000000-aaaaaa"
B = "20260102-000000-bbbbbb"


class Terminal(io.StringIO):
    """Standard input that says it is a terminal, with the user's answer in it."""

    def isatty(self) -> bool:
        return True


def test_compare_prints_chart_differences_and_evals(tunedeck_home: Path, capsys) -> None:
    make_run(tunedeck_home, A, lr=2e-4, summary=summary(0.9, 0.5))
    make_run(tunedeck_home, B, lr=1e-3, losses=(2.2, 1.1, 0.7))
    assert main(["compare", "20260101", "20260102"]) == 0
    out = capsys.readouterr().out
    assert f"A  {A}  (best val loss 1.3000 at step 3)" in out
    assert "* A train" in out and "o A val" in out and "+ B train" in out
    assert "learning_rate  0.0002  0.001" in out
    assert "fine-tuned · primary" in out and "A: fine-tuned beats" in out
    assert f"primary metric: label accuracy (run {A}'s)" in out

    assert main(["compare", A, B, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [run["id"] for run in data["runs"]] == [A, B]
    assert data["config_differences"] == {"learning_rate": [2e-4, 1e-3]}
    assert data["runs"][1]["train"] == [[1, 2.2], [2, 1.1], [3, 0.7]]


def test_compare_of_one_run_is_a_clear_error(tunedeck_home: Path, capsys) -> None:
    make_run(tunedeck_home, A)
    assert main(["compare", A]) == 2
    err = capsys.readouterr().err
    assert "error: a comparison needs two or more different runs" in err and "hint:" in err


def test_delete_off_a_terminal_needs_yes(tunedeck_home: Path, capsys, monkeypatch) -> None:
    run_dir = make_run(tunedeck_home, A)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # a pipe, not a person
    assert main(["delete", A]) == 2
    assert "--yes" in capsys.readouterr().err and run_dir.is_dir()
    assert main(["delete", A, "--yes"]) == 0
    assert f"deleted {A}" in capsys.readouterr().out and not run_dir.exists()


def test_delete_on_a_terminal_asks(tunedeck_home: Path, capsys, monkeypatch) -> None:
    kept = make_run(tunedeck_home, A)
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert main(["delete", A]) == 1
    assert "nothing deleted" in capsys.readouterr().out and kept.is_dir()
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    assert main(["delete", A]) == 0
    assert not kept.exists()


def test_delete_refuses_a_training_run_and_deletes_nothing(tunedeck_home: Path, capsys) -> None:
    finished = make_run(tunedeck_home, A)
    training = make_run(tunedeck_home, B, state="running")
    with worker_lock(training, wait_s=0):
        assert main(["delete", A, B, "--yes"]) == 2
    err = capsys.readouterr().err
    assert f"error: run {B} is running" in err and f"tunedeck stop {B}" in err
    assert finished.is_dir() and training.is_dir()  # all checked before any is deleted


@pytest.mark.parametrize("ref", ["../elsewhere", "/etc", ".."])
def test_delete_never_leaves_the_runs_folder(tunedeck_home: Path, ref: str) -> None:
    (tunedeck_home / "elsewhere").mkdir()
    assert main(["delete", ref, "--yes"]) == 2
    assert (tunedeck_home / "elsewhere").is_dir()


def test_compare_on_a_test_file_prints_the_outcome(
    tunedeck_home: Path, tmp_path: Path, capsys
) -> None:
    from tests.engine.test_outcome import answers, score_on, ticket_run, write_test_file

    a, b = ticket_run(tunedeck_home, A), ticket_run(tunedeck_home, B)
    path = write_test_file(tmp_path)
    score_on(a, path, answers(range(12)))
    assert main(["compare", A, B, "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert "error: not every run was scored on tickets_test.jsonl" in err
    assert f"run {B} never was" in err and "hint: " in err
    assert f"tunedeck eval {B} --data {path}" in err

    score_on(b, path, answers(set(range(12)) - {3} | set(range(12, 20))))
    assert main(["compare", A, B, "--data", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"A  {A}\nB  {B}\n" in out
    assert "Outcome on test file tickets_test.jsonl (20 examples)" in out
    assert f"  primary metric: category accuracy (run {A}'s: " in out
    assert "run  category accuracy [95 % CI]  exact match" in out
    assert "B beats A on category accuracy: 0.95 [0.76, 0.99] vs 0.60 [0.39, 0.78], " in out
    assert "8 wins / 1 loss, p = 0.039" in out
    assert "(the configs are identical)" in out

    assert main(["compare", A, B, "--data", str(path), "--primary", "fields", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["primary"]["of"] == "chosen by you" and data["examples"] == 20
    assert [run["id"] for run in data["runs"]] == [A, B]
    assert data["versus"][0]["wins"] == 8 and data["config_differences"] == {}
