"""Run store faults: garbled status, dead workers after a reboot, concurrency, viewers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from engine.config.build import from_preset, save_config, with_overrides
from engine.core.events import EventWriter, RunStatus, write_status
from engine.runs.store import follow_events, list_runs, new_run_id, run_info
from tui.cli import main


def fake_run(home: Path, run_id: str, status: RunStatus | None) -> Path:
    """A run directory as a worker would leave it, without a worker."""
    run_dir = home / "runs" / run_id
    run_dir.mkdir(parents=True)
    save_config(with_overrides(from_preset("quick"), **{"data.source": "x.jsonl"}),
                run_dir / "config.toml")  # fmt: skip
    if status is not None:
        write_status(run_dir, status)
    EventWriter(run_dir).emit("state", state=status.state if status else "queued")
    return run_dir


def test_after_a_reboot_a_running_run_shows_as_died_and_resumable(tunedeck_home) -> None:
    stale = time.time() - 3600
    status = RunStatus(state="running", pid=999_999, step=7, heartbeat=stale)
    run_dir = fake_run(tunedeck_home, "20260101-000000-aaaaaa", status)
    info = run_info(run_dir)
    assert info.state == "failed (worker died)" and info.resumable


def test_a_garbled_status_is_listed_not_fatal(tunedeck_home, capsys) -> None:
    run_dir = fake_run(tunedeck_home, "20260101-000000-bbbbbb", RunStatus(state="running"))
    (run_dir / "status.json").write_text('{"state": "runn')
    assert run_info(run_dir).state == "failed (status unreadable)"
    assert main(["runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["state"] == "failed (status unreadable)"
    assert main(["runs"]) == 0


def test_two_ids_in_the_same_second_differ() -> None:
    ids = {new_run_id() for _ in range(200)}
    assert len(ids) == 200


def test_several_viewers_follow_one_run_at_once(tunedeck_home) -> None:
    run_dir = fake_run(tunedeck_home, "20260101-000000-cccccc", RunStatus(state="queued"))
    seen: list[list[dict]] = [[], [], []]

    def view(index: int) -> None:
        seen[index].extend(follow_events(run_dir, poll_s=0.02))

    viewers = [threading.Thread(target=view, args=(i,)) for i in range(3)]
    for viewer in viewers:
        viewer.start()
    writer = EventWriter(run_dir)
    write_status(run_dir, RunStatus(state="queued", pid=None))
    for step in range(1, 30):
        writer.emit("metric", split="train", step=step, loss=1.0 / step)
    writer.emit("state", state="completed")
    write_status(run_dir, RunStatus(state="completed", step=29))
    for viewer in viewers:
        viewer.join(10)
    for events in seen:
        steps = [e["step"] for e in events if e["type"] == "metric"]
        assert steps == list(range(1, 30))
        assert events[-1] == {**events[-1], "type": "state", "state": "completed"}


def test_listing_is_newest_first(tunedeck_home) -> None:
    for run_id in ("20260101-000000-aaaaaa", "20260102-000000-aaaaaa"):
        fake_run(tunedeck_home, run_id, RunStatus(state="completed"))
    assert [i.id for i in list_runs()] == ["20260102-000000-aaaaaa", "20260101-000000-aaaaaa"]
