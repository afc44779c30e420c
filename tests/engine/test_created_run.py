"""A run created without its worker (the wizard's Baseline step), then started.

No torch here: create_run only writes the config and the data split, and the worker's
start is replaced by a recorder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config.build import from_preset, load_config, with_overrides
from engine.core.events import ACTIVE_STATES, RunStatus, iter_all_events, write_status
from engine.runs.store import (
    CREATED,
    RunStateError,
    create_run,
    list_runs,
    run_info,
    same_data_and_model,
    start_created_run,
)
from tests.conftest import REPO_ROOT

SAMPLE = REPO_ROOT / "sample_data" / "support_tickets.jsonl"


@pytest.fixture
def cfg():
    return from_preset("quick", **{"data.source": str(SAMPLE), "data.val_fraction": 0.1})


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """start_worker, recorded instead of run (the worker would load a model)."""
    calls: list[Path] = []

    def fake_start(run_dir: Path) -> int:
        calls.append(run_dir)
        write_status(run_dir, RunStatus(state="running", pid=4242))
        return 4242

    monkeypatch.setattr("engine.runs.store.start_worker", fake_start)
    return calls


def test_a_created_run_is_neither_queued_nor_active(cfg) -> None:
    run = create_run(cfg)
    info = run_info(run)
    assert info.state == CREATED and info.state not in ACTIVE_STATES
    assert not info.resumable
    assert [i.state for i in list_runs()] == [CREATED]


def test_only_hyperparameter_changes_keep_the_runs_data_and_model(cfg) -> None:
    run = create_run(cfg)
    assert same_data_and_model(run, cfg)
    assert same_data_and_model(run, with_overrides(cfg, learning_rate=1e-3, epochs=5))
    assert not same_data_and_model(run, with_overrides(cfg, **{"data.val_fraction": 0.2}))
    assert not same_data_and_model(run, with_overrides(cfg, **{"data.split_seed": 7}))
    assert not same_data_and_model(run, with_overrides(cfg, model="/elsewhere/model"))
    assert not same_data_and_model(run, with_overrides(cfg, **{"data.source": None}))


def test_starting_a_created_run_rewrites_its_hyperparameters(cfg, started) -> None:
    run = create_run(cfg)
    split = (run / "data" / "val.jsonl").read_bytes()
    before = load_config(run / "config.toml")
    info = start_created_run(run, with_overrides(cfg, learning_rate=1e-3))
    assert started == [run] and info.dir == run
    stored = load_config(run / "config.toml")
    assert stored.learning_rate == 1e-3 != before.learning_rate
    assert (stored.data, stored.model) == (before.data, before.model)
    assert (run / "data" / "val.jsonl").read_bytes() == split  # the split is untouched
    assert [e["type"] for e in iter_all_events(run)].count("config_updated") == 1


def test_an_unchanged_config_is_left_as_it_is(cfg, started) -> None:
    run = create_run(cfg)
    before = (run / "config.toml").read_bytes()
    start_created_run(run, cfg)
    assert (run / "config.toml").read_bytes() == before
    assert "config_updated" not in [e["type"] for e in iter_all_events(run)]


def test_a_created_run_refuses_other_data_or_a_second_start(cfg, started) -> None:
    run = create_run(cfg)
    with pytest.raises(RunStateError, match="other data or another model"):
        start_created_run(run, with_overrides(cfg, **{"data.val_fraction": 0.2}))
    assert started == []
    start_created_run(run, cfg)
    with pytest.raises(RunStateError, match="only a run that was never started"):
        start_created_run(run, cfg)
    assert started == [run]
