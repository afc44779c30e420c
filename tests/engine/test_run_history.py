"""Run history: deleting finished runs safely, comparing runs (curves, configs, evals)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.config.build import from_preset, save_config, with_overrides
from engine.core.control import worker_lock
from engine.core.errors import TunedeckError
from engine.core.events import EventWriter, RunStatus, write_status
from engine.eval.launch import eval_lock
from engine.runs.admin import check_deletable, delete_run
from engine.runs.compare import compare_runs, config_rows, eval_rows
from engine.runs.store import RunNotFoundError, RunStateError, find_run, list_runs


def make_run(
    home: Path,
    run_id: str,
    state: str = "completed",
    lr: float = 2e-4,
    losses: tuple[float, ...] = (2.0, 1.5, 1.2),
    summary: dict[str, Any] | None = None,
    pid: int | None = None,
) -> Path:
    """A run directory as a finished worker leaves it: config, status, events, eval."""
    run_dir = home / "runs" / run_id
    (run_dir / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (run_dir / "checkpoints" / "checkpoint-2" / "adapter.bin").write_bytes(b"x" * 4096)
    cfg = with_overrides(from_preset("quick"), **{"data.source": "/data/x.jsonl"})
    save_config(with_overrides(cfg, learning_rate=lr), run_dir / "config.toml")
    write_status(run_dir, RunStatus(state=state, pid=pid, step=len(losses)))
    events = EventWriter(run_dir)
    events.emit("state", state="running")
    for step, loss in enumerate(losses, 1):
        events.emit("metric", split="train", step=step, loss=loss)
    events.emit("metric", split="val", step=len(losses), loss=losses[-1] + 0.1)
    events.emit("best", step=len(losses), val_loss=losses[-1] + 0.1)
    events.emit("state", state=state)
    if summary is not None:
        (run_dir / "eval").mkdir()
        (run_dir / "eval" / "summary.json").write_text(json.dumps(summary))
    return run_dir


def summary(tuned: float, base: float) -> dict[str, Any]:
    """An eval summary.json with the fields the comparison reads."""
    stats = {"primary": None, "rouge_l": 0.5, "val_loss": None, "failures": 0, "n": 20}
    return {
        "primary": {"kind": "label", "name": "label accuracy"},
        "systems": {
            "tuned": {**stats, "primary": tuned, "val_loss": 0.61},
            "base_few": {**stats, "primary": base, "val_loss": 1.9},
        },
        "verdict": f"fine-tuned beats few-shot base ({tuned} vs {base})",
    }


# -- delete --------------------------------------------------------------------------------


def test_a_completed_run_is_deleted_and_unlisted(tunedeck_home: Path) -> None:
    keep = make_run(tunedeck_home, "20260101-000000-aaaaaa")
    gone = make_run(tunedeck_home, "20260102-000000-bbbbbb", summary=summary(0.9, 0.5))
    deletion = check_deletable(gone)
    assert deletion.info.id == gone.name and deletion.size >= 4096
    assert delete_run(gone).info.id == gone.name
    assert not gone.exists() and keep.is_dir()
    assert [info.id for info in list_runs()] == [keep.name]
    assert list((tunedeck_home / "runs").iterdir()) == [keep]  # nothing hidden left behind
    with pytest.raises(RunNotFoundError):
        find_run(gone.name)


def test_a_training_run_is_refused_with_a_hint(tunedeck_home: Path) -> None:
    run_dir = make_run(tunedeck_home, "20260101-000000-cccccc", state="running")
    with worker_lock(run_dir, wait_s=0), pytest.raises(RunStateError) as refused:
        delete_run(run_dir)
    assert "cannot be deleted" in refused.value.message
    assert "tunedeck stop 20260101-000000-cccccc" in refused.value.hint
    assert (run_dir / "config.toml").is_file()


def test_a_run_being_evaluated_is_refused(tunedeck_home: Path) -> None:
    run_dir = make_run(tunedeck_home, "20260101-000000-dddddd")
    (run_dir / "eval").mkdir()
    with eval_lock(run_dir), pytest.raises(RunStateError, match="evaluation"):
        delete_run(run_dir)
    assert run_dir.is_dir()


def test_a_queued_run_whose_worker_never_started_can_go(tunedeck_home: Path) -> None:
    run_dir = make_run(tunedeck_home, "20260101-000000-eeeeee", state="queued")
    delete_run(run_dir)
    assert not run_dir.exists()


def test_nothing_outside_the_runs_folder_is_deleted(tunedeck_home: Path, tmp_path: Path) -> None:
    outside = make_run(tmp_path, "20260101-000000-ffffff")  # a run-like dir elsewhere
    link = tunedeck_home / "runs" / "20260101-000000-111111"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside, target_is_directory=True)
    stray = tunedeck_home / "runs" / "notes"
    stray.mkdir()
    for target in (outside, link, stray, tunedeck_home / "runs", tunedeck_home / "runs" / ".."):
        with pytest.raises(RunNotFoundError):
            delete_run(target)
    assert outside.is_dir() and (outside / "config.toml").is_file() and stray.is_dir()


# -- compare -------------------------------------------------------------------------------


def test_compare_shows_curves_differing_fields_and_evals(tunedeck_home: Path) -> None:
    a = make_run(tunedeck_home, "20260101-000000-aaaaaa", lr=2e-4, summary=summary(0.9, 0.5))
    b = make_run(tunedeck_home, "20260102-000000-bbbbbb", lr=1e-3, losses=(2.1, 1.0, 0.5, 0.4))
    comparison = compare_runs([a, b, a])  # a run named twice is compared once
    assert [run.id for run in comparison.runs] == [a.name, b.name]
    assert comparison.config == {"learning_rate": [2e-4, 1e-3]}
    assert config_rows(comparison) == [("learning_rate", ["0.0002", "0.001"])]
    first, second = comparison.runs
    assert first.train == [(1, 2.0), (2, 1.5), (3, 1.2)] and first.val == [(3, 1.3)]
    assert second.train[-1] == (4, 0.4) and second.best == (4, 0.5)
    assert first.eval["tuned"]["primary"] == 0.9 and second.eval == {}
    assert first.primary_name == "label accuracy" and "beats" in (first.verdict or "")
    rows = dict(eval_rows(comparison))
    assert rows["fine-tuned · primary"] == ["0.9", "—"]
    assert comparison.primary is not None and comparison.primary["name"] == "label accuracy"
    assert comparison.primary_line().startswith("primary metric: label accuracy (run ")
    assert rows["base few-shot · val loss"] == ["1.9", "—"]
    assert json.loads(json.dumps(comparison.to_json()))["config_differences"] == {
        "learning_rate": [2e-4, 1e-3]
    }


def test_nested_config_fields_are_flattened(tunedeck_home: Path) -> None:
    a = make_run(tunedeck_home, "20260101-000000-aaaaaa")
    b = make_run(tunedeck_home, "20260102-000000-bbbbbb")
    cfg = with_overrides(from_preset("quick"), **{"data.source": "/data/x.jsonl", "lora.r": 32})
    save_config(cfg, b / "config.toml")
    assert compare_runs([a, b]).config == {"lora.r": [8, 32]}


def test_compare_needs_two_runs(tunedeck_home: Path) -> None:
    a = make_run(tunedeck_home, "20260101-000000-aaaaaa")
    with pytest.raises(TunedeckError, match="two or more"):
        compare_runs([a, a])
