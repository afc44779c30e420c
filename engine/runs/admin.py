"""Deleting a run: only a finished one, only inside the runs folder, never half-listed.

A run is deleted in two moves. Under the run's worker lock (so no worker can start on it
meanwhile) the directory is renamed to a hidden `.deleting-*` name in the runs folder,
which takes it out of every listing at once; then the hidden copy is removed. A removal
that fails half way leaves a hidden directory that no listing shows, never a half run.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from engine.core.control import LOCK_FILE, pid_lock, worker_alive
from engine.core.errors import TunedeckError
from engine.core.events import ACTIVE_STATES, EVENTS_FILE
from engine.core.paths import runs_dir
from engine.eval.launch import eval_running
from engine.runs.store import CONFIG_FILE, RunInfo, RunNotFoundError, RunStateError, run_info

DELETING_PREFIX = ".deleting-"
"""Name prefix of a run directory being removed; listings skip hidden names."""


@dataclass(frozen=True)
class Deletion:
    """What deleting a run would remove."""

    info: RunInfo
    size: int
    """Bytes on disk (checkpoints, adapter, evaluation, logs)."""


def check_deletable(run_dir: Path) -> Deletion:
    """What deleting `run_dir` would remove, or why it may not be deleted.

    Raises:
        RunNotFoundError: not a run directory directly inside the runs folder.
        RunStateError: its worker is running or starting, or an evaluation of it runs.
    """
    _check_inside_runs(run_dir)
    info = run_info(run_dir)
    if _worker_may_run(run_dir, info):
        raise RunStateError(
            f"run {info.id} is {info.state}: a run that is training cannot be deleted",
            hint=f"stop it first (`tunedeck stop {info.id}`, or x on the Train screen)",
        )
    if eval_running(run_dir):
        raise RunStateError(
            f"an evaluation of run {info.id} is running: the run cannot be deleted now",
            hint="wait for the evaluation to finish, then delete the run",
        )
    return Deletion(info, disk_usage(run_dir))


def delete_run(run_dir: Path) -> Deletion:
    """Remove a finished run's directory and everything in it; what was removed.

    Raises:
        RunNotFoundError, RunStateError: as check_deletable; nothing is removed.
        TunedeckError: the files could not all be removed (the run is unlisted anyway).
    """
    deletion = check_deletable(run_dir)
    busy = RunStateError(
        f"run {run_dir.name} has just started a worker: it cannot be deleted",
        hint=f"stop it first (`tunedeck stop {run_dir.name}`)",
    )
    hidden = run_dir.with_name(f"{DELETING_PREFIX}{run_dir.name}-{secrets.token_hex(3)}")
    # Holding the worker lock: a worker started now fails to take it instead of training
    # in a directory that is going away.
    with pid_lock(run_dir / LOCK_FILE, busy):
        os.rename(run_dir, hidden)
    try:
        shutil.rmtree(hidden)
    except OSError as exc:
        raise TunedeckError(
            f"run {run_dir.name} is unlisted but not all of its files could be removed: "
            f"{exc.strerror or exc}",
            hint=f"remove {hidden} by hand",
        ) from exc
    return deletion


def disk_usage(path: Path) -> int:
    """Bytes of the regular files under `path` (links are not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue  # removed meanwhile
    return total


def _check_inside_runs(run_dir: Path) -> None:
    """A run directory sits directly in the runs folder; a link or anything else is refused."""
    root = runs_dir().resolve()
    looks_like_run = (run_dir / CONFIG_FILE).is_file() or (run_dir / EVENTS_FILE).is_file()
    if (
        run_dir.is_symlink()
        or not run_dir.is_dir()
        or run_dir.resolve().parent != root
        or run_dir.name.startswith(".")
        or not looks_like_run
    ):
        raise RunNotFoundError(
            f"{run_dir} is not a run directory in {root}",
            hint="`tunedeck runs` lists the runs",
        )


def _worker_may_run(run_dir: Path, info: RunInfo) -> bool:
    """True while a worker trains, or is starting (queued with a live process).

    A run queued whose worker never started (no pid recorded, no lock held) is not
    training: it may be deleted.
    """
    if worker_alive(run_dir):
        return True
    if info.state not in ACTIVE_STATES:
        return False
    never_started = info.status is not None and info.status.pid is None
    return not never_started
