"""The run directory's channels: events, status, control requests, lock, checkpoints."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from engine.core import checkpoints
from engine.core.control import (
    ControlReader,
    RunLockedError,
    send_request,
    worker_alive,
    worker_lock,
)
from engine.core.events import (
    EventWriter,
    RunStatus,
    metric_history,
    read_events,
    read_status,
    write_status,
)


def test_events_round_trip_and_a_torn_last_line_waits(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path)
    writer.emit("metric", split="train", step=1, loss=2.5)
    writer.emit("metric", split="train", step=2, loss=float("nan"))
    with open(tmp_path / "events.jsonl", "a") as handle:
        handle.write('{"type": "metric", "split": "tr')  # a worker killed mid-write
    events, offset = read_events(tmp_path / "events.jsonl")
    assert [e["step"] for e in events] == [1, 2]
    assert events[1]["loss"] == "nan"  # JSON has no NaN; the value survives as text
    assert all("time" in e for e in events)
    with open(tmp_path / "events.jsonl", "a") as handle:
        handle.write('ain", "step": 3, "loss": 1.0}\n')
    more, _ = read_events(tmp_path / "events.jsonl", offset)
    assert [e["step"] for e in more] == [3]


def test_foreign_lines_are_skipped_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text('[1, 2]\n{"no_type": 1}\nnot json\n{"type": "x"}\n')
    events, _ = read_events(tmp_path / "events.jsonl")
    assert events == [{"type": "x"}]


def test_resume_supersedes_points_after_the_checkpoint() -> None:
    events = [{"type": "metric", "split": "train", "step": s, "loss": 1.0} for s in (5, 10, 15)]
    events += [{"type": "resume", "from_step": 10}]
    events += [{"type": "metric", "split": "train", "step": 15, "loss": 0.9}]
    assert [(p["step"], p["loss"]) for p in metric_history(events)] == [
        (5, 1.0), (10, 1.0), (15, 0.9)
    ]  # fmt: skip


def test_status_is_replaced_whole_and_garbage_reads_as_none(tmp_path: Path) -> None:
    write_status(tmp_path, RunStatus(state="running", step=3, max_steps=10))
    assert read_status(tmp_path) == RunStatus(state="running", step=3, max_steps=10)
    assert not list(tmp_path.glob(".*tmp"))
    (tmp_path / "status.json").write_text('{"state": "runn')
    assert read_status(tmp_path) is None
    (tmp_path / "status.json").write_text(json.dumps({"state": "dancing"}))
    assert read_status(tmp_path) is None


def test_control_requests_reach_the_reader_once_in_order(tmp_path: Path) -> None:
    send_request(tmp_path, "checkpoint")  # before the worker started: not for it
    reader = ControlReader(tmp_path)
    assert reader.poll() == []
    send_request(tmp_path, "evaluate")
    send_request(tmp_path, "stop")
    assert reader.poll() == ["evaluate", "stop"]
    assert reader.poll() == []
    with pytest.raises(ValueError):
        send_request(tmp_path, "explode")  # type: ignore[arg-type]


def _hold_lock(run_dir: str, ready, release) -> None:
    with worker_lock(Path(run_dir)):
        ready.set()
        release.wait(10)


def test_one_worker_per_run_and_the_lock_dies_with_the_process(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    assert ready.wait(30)
    assert worker_alive(tmp_path)
    with pytest.raises(RunLockedError, match="already owned"), worker_lock(tmp_path, wait_s=0.2):
        pass
    os.kill(holder.pid, 9)  # kill -9: no cleanup code runs
    holder.join(10)
    deadline = time.monotonic() + 5
    while worker_alive(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not worker_alive(tmp_path)
    with worker_lock(tmp_path, wait_s=0.5):
        assert worker_alive(tmp_path) is True  # held by us now


def _fake_checkpoint(root: Path, step: int, complete: bool, payload: int = 64) -> Path:
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    header = json.dumps({"w": {"dtype": "F32", "shape": [payload // 4],
                               "data_offsets": [0, payload]}}).encode()  # fmt: skip
    data = len(header).to_bytes(8, "little") + header + b"\0" * payload
    (path / "adapter_model.safetensors").write_bytes(data)
    if complete:
        checkpoints.mark_complete(path, step)
    return path


def test_latest_valid_skips_unmarked_and_truncated_checkpoints(tmp_path: Path) -> None:
    _fake_checkpoint(tmp_path, 10, complete=True)
    good = _fake_checkpoint(tmp_path, 20, complete=True)
    truncated = _fake_checkpoint(tmp_path, 30, complete=True)
    weights = truncated / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    half = _fake_checkpoint(tmp_path, 40, complete=False)
    assert checkpoints.latest_valid(tmp_path) == good
    assert checkpoints.remove_incomplete(tmp_path) == [half]
    assert not half.exists() and truncated.exists()


def test_run_references_cannot_escape_the_runs_folder(tunedeck_home: Path) -> None:
    from engine.runs.store import RunNotFoundError, find_run

    outside = tunedeck_home / "elsewhere"
    outside.mkdir()
    (outside / "config.toml").write_text("")
    for ref in ("../elsewhere", str(outside), "a/../../b", "..", "/etc"):
        with pytest.raises(RunNotFoundError):
            find_run(ref)
    inside = tunedeck_home / "runs" / "20260101-000000-abcdef"
    inside.mkdir(parents=True)
    assert find_run("20260101-000000") == inside
    assert find_run(str(inside)) == inside


def test_a_checkpoint_whose_offsets_do_not_match_its_tensors_is_not_valid(tmp_path: Path) -> None:
    # The header says 4 floats (16 bytes) but its offsets give the tensor 24: safetensors'
    # own parser refuses it, where a length check alone would have accepted it.
    path = tmp_path / "checkpoint-10"
    path.mkdir()
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 24]}}).encode()
    (path / "adapter_model.safetensors").write_bytes(
        len(header).to_bytes(8, "little") + header + b"\0" * 24
    )
    checkpoints.mark_complete(path, 10)
    assert not checkpoints.safetensors_readable(path / "adapter_model.safetensors")
    assert checkpoints.latest_valid(tmp_path) is None


def test_an_atomic_write_flushes_the_folder_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.core import files

    flushed: list[tuple[Path, bool]] = []
    target = tmp_path / "status.json"

    def record(path: Path) -> None:
        flushed.append((path, target.exists()))

    monkeypatch.setattr(files, "fsync_path", record)
    files.write_text_atomic(target, "{}\n")
    assert target.read_text() == "{}\n"
    assert flushed == [(tmp_path, True)]  # the folder, once the new name is in it


def test_a_durable_replace_flushes_the_file_then_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.core import files

    flushed: list[Path] = []
    monkeypatch.setattr(files, "fsync_path", flushed.append)
    tmp, target = tmp_path / ".out.tmp", tmp_path / "out.jsonl"
    tmp.write_text("x\n")
    files.replace_durably(tmp, target)
    assert target.read_text() == "x\n" and not tmp.exists()
    assert flushed == [tmp, tmp_path]


def test_cpu_memory_is_the_peak_resident_set() -> None:
    from engine.train.callback import _memory_bytes, peak_rss_bytes

    with open("/proc/self/statm") as handle:
        current = int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    grown = bytearray(64 << 20)  # raise the peak by 64 MiB, then let it go
    grown[::4096] = b"\1" * len(grown[::4096])
    peak = peak_rss_bytes()
    del grown
    assert peak >= current + (60 << 20)
    assert _memory_bytes() >= peak  # the peak stays after the memory is freed
