"""The run store: create runs, start their detached workers, list and control them.

A run is a directory under `$TUNEDECK_HOME/runs/<run-id>/` (engine.core.layout names its
files); this module never talks to a worker except through that directory, so any number
of viewers (TUI, CLI, tests) can come and go while the run goes on.

Longer than 400 lines: creating, starting, finding, listing and controlling a run all read
and write the same few files of its directory (engine.core.layout); the admin of old runs
(engine.runs.admin) and their comparison (engine.runs.compare) live apart.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config.build import (
    TrainConfig,
    config_value,
    config_warnings,
    save_config,
    with_overrides,
)
from engine.config.recipe import local_model_config, recipe_for_run
from engine.core.control import Action, send_request, worker_alive
from engine.core.errors import TunedeckError
from engine.core.events import (
    EVENTS_FILE,
    FINAL_STATES,
    EventWriter,
    RunStatus,
    read_events,
    read_status,
    write_status,
)
from engine.core.layout import CONFIG_FILE, DATA_DIR, LOG_FILE, TRAIN_FILE
from engine.core.paths import runs_dir
from engine.core.process import spawn_detached
from engine.data.formats import load_examples
from engine.data.hub import is_hub_id, resolve_hub_dataset

RESUMABLE_STATES = ("paused", "stopped", "failed", "failed (worker died)")
CREATED = "created"
"""Effective state of a run whose directory exists but whose worker was never started: the
wizard's Baseline step evaluates the base model on its split before training."""


class RunNotFoundError(TunedeckError):
    """No run matches the id or prefix the user gave."""


class RunStateError(TunedeckError):
    """The run is not in a state that allows the requested action."""


@dataclass(frozen=True)
class RunInfo:
    """What `tunedeck runs` shows about one run."""

    id: str
    dir: Path
    state: str
    """Effective state: the worker's own, or `failed (worker died)` when it vanished."""
    status: RunStatus | None
    created: float

    @property
    def resumable(self) -> bool:
        return self.state in RESUMABLE_STATES

    def to_json(self) -> dict[str, Any]:
        status = self.status or RunStatus(state="failed")
        return {
            "id": self.id,
            "state": self.state,
            "step": status.step,
            "max_steps": status.max_steps,
            "epoch": status.epoch,
            "best_val_loss": status.best_val_loss,
            "best_step": status.best_step,
            "error": status.error,
            "created": self.created,
            "dir": str(self.dir),
        }


# ---------------------------------------------------------------------------
# Creating and starting
# ---------------------------------------------------------------------------


def new_run_id() -> str:
    """Sortable by time, unique even for runs started in the same second."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def freeze_config(cfg: TrainConfig) -> TrainConfig:
    """The config as the run records it: valid for a run, with absolute local paths.

    The worker runs in the run directory, and `tunedeck train <run>/config.toml` must
    repeat the run from anywhere, so relative paths are resolved now, and a hub dataset is
    pinned to the commit it resolves to (`ORG/NAME[train]` -> `ORG/NAME@<commit>[train]`).
    """
    cfg = cfg.validate_for_run()
    changes: dict[str, Any] = {}
    for name in ("train", "val", "source"):
        value = getattr(cfg.data, name)
        if value is not None and is_hub_id(value):
            # The commit read, in the id: a rerun reads the same rows (cache, else the hub).
            changes[f"data.{name}"] = str(resolve_hub_dataset(value).pinned)
        elif value is not None:
            changes[f"data.{name}"] = str(Path(value).expanduser().resolve())
    model_path = Path(cfg.model).expanduser()
    if model_path.exists():
        changes["model"] = str(model_path.resolve())
    return with_overrides(cfg, **changes) if changes else cfg


def create_run(
    cfg: TrainConfig,
    keep: Collection[str] | None = None,
    reasons: Mapping[str, str] | None = None,
) -> Path:
    """Make the run directory: frozen config, the data split, status `queued`.

    Args:
        keep: None: the config is complete as given (a config file, or the wizard's
            choices). A collection: tunedeck chooses the recipe's fields (`engine.config.recipe`:
            learning rate, batch, epochs, method, intervals) from the split, the model and
            the machine, except the fields named here, which the user set.
        reasons: why tunedeck chose some values (the wizard's recipe); written into
            config.toml beside them and recorded in a `recipe` event.
    """
    from engine.runs.data import prepare_run_data

    cfg = freeze_config(cfg)
    run_dir = _new_run_dir()
    try:
        split = prepare_run_data(cfg, run_dir / DATA_DIR)
        if keep is not None:
            train = load_examples(run_dir / DATA_DIR / TRAIN_FILE).examples
            recipe = recipe_for_run(cfg, train, keep, split.val_count)
            cfg, reasons = recipe.config, recipe.reasons()
        save_config(cfg, run_dir / CONFIG_FILE, reasons)
    except BaseException:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)  # no half-made run left behind
        raise
    write_status(run_dir, RunStatus(state="queued", heartbeat=time.time()))
    events = EventWriter(run_dir)
    events.emit("state", state="queued")
    events.emit(
        "data",
        train_examples=split.train_count,
        val_examples=split.val_count,
        skipped_lines=split.skipped_lines,
        warnings=split.warnings,
    )
    _emit_recipe(events, cfg, reasons)
    _emit_config_warnings(events, cfg, split.train_count)
    return run_dir


def _emit_recipe(events: EventWriter, cfg: TrainConfig, reasons: Mapping[str, str] | None) -> None:
    """A `recipe` event: the values tunedeck chose and why (for viewers and the CLI)."""
    if reasons:
        choices = [
            {"field": name, "value": config_value(cfg, name), "reason": reason}
            for name, reason in reasons.items()
        ]
        events.emit("recipe", choices=choices)


def _new_run_dir() -> Path:
    root = runs_dir()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    while True:
        run_dir = root / new_run_id()
        try:
            run_dir.mkdir(mode=0o700)  # exclusive: a clash draws another id; user-only access
            return run_dir
        except FileExistsError:
            continue


def _emit_config_warnings(events: EventWriter, cfg: TrainConfig, n_train: int | None) -> None:
    """The config's warnings, judged with the model's size when it is on disk."""
    model_config = local_model_config(cfg.model)
    for warning in config_warnings(cfg, n_train, model_config=model_config):
        events.emit("warning", code="config", message=warning)


def recipe_choices(run_dir: Path) -> list[dict[str, Any]]:
    """The values tunedeck chose for a run and why (its `recipe` event; [] if none)."""
    events, _ = read_events(run_dir / EVENTS_FILE, 0)
    found = [e.get("choices") for e in events if e.get("type") == "recipe"]
    return [c for c in (found[-1] or []) if isinstance(c, dict)] if found else []


def worker_command(run_dir: Path) -> list[str]:
    """The worker's command line: one process, or torchrun for num_processes > 1 (DDP)."""
    from engine.config.build import load_config

    processes = load_config(run_dir / CONFIG_FILE).num_processes
    worker = ["-m", "engine.train", str(run_dir)]
    if processes <= 1:
        return [sys.executable, *worker]
    # --standalone: a private rendezvous on a free local port, no coordination service.
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    return [sys.executable, *launcher, *worker]


def start_worker(run_dir: Path) -> int:
    """Start the worker in its own session: closing the terminal or SSH does not stop it."""
    from engine.config.build import load_config
    from engine.model.devices import place_worker

    # One process sees one GPU (engine.model.devices says why); the note reaches the runtime event.
    placement = place_worker(load_config(run_dir / CONFIG_FILE).num_processes)
    pid = spawn_detached(worker_command(run_dir), run_dir, run_dir / LOG_FILE, placement.env)
    status = read_status(run_dir) or RunStatus(state="queued")
    if status.state != "running":  # the worker may already have said more
        write_status(run_dir, RunStatus(**{**status.__dict__, "pid": pid}))
    return pid


def start_run(
    cfg: TrainConfig,
    keep: Collection[str] | None = None,
    reasons: Mapping[str, str] | None = None,
) -> RunInfo:
    """Create a run and start its worker; returns at once (see create_run)."""
    run_dir = create_run(cfg, keep, reasons)
    start_worker(run_dir)
    return run_info(run_dir)


def same_data_and_model(run_dir: Path, cfg: TrainConfig) -> bool:
    """True when `cfg` trains the run's model on the run's data (same source, same split).

    Then the run's split and everything evaluated on it (the baseline) still hold, and
    only hyperparameters differ. An invalid `cfg` is never the same.
    """
    from engine.config.build import load_config

    try:
        frozen = freeze_config(cfg)
        stored = load_config(run_dir / CONFIG_FILE)
    except (TunedeckError, OSError):  # ConfigError is a TunedeckError
        return False
    return frozen.data == stored.data and frozen.model == stored.model


def start_created_run(
    run_dir: Path, cfg: TrainConfig, reasons: Mapping[str, str] | None = None
) -> RunInfo:
    """Start the worker of a run made by create_run and never started, training with `cfg`.

    The hyperparameters may have changed since the run was created (the config is
    rewritten); the data and the model may not, because the split and the baseline
    answers in the run directory belong to them.

    Raises:
        RunStateError: the run was started already, or `cfg` has other data or another model.
    """
    info = run_info(run_dir)
    if info.state != CREATED:
        raise RunStateError(
            f"run {info.id} is {info.state}: only a run that was never started can start",
            hint="start a new run instead",
        )
    if not same_data_and_model(run_dir, cfg):
        raise RunStateError(
            f"run {info.id} was made for other data or another model",
            hint="start a new run (its baseline must then be evaluated again)",
        )
    _update_config(run_dir, freeze_config(cfg), reasons)
    start_worker(run_dir)
    return run_info(run_dir)


def _update_config(
    run_dir: Path, cfg: TrainConfig, reasons: Mapping[str, str] | None = None
) -> None:
    """Rewrite a created run's config when the hyperparameters changed; warn again."""
    from engine.config.build import load_config

    if load_config(run_dir / CONFIG_FILE) == cfg:
        return
    save_config(cfg, run_dir / CONFIG_FILE, reasons)
    events = EventWriter(run_dir)
    events.emit("config_updated", reason="hyperparameters changed before training started")
    _emit_recipe(events, cfg, reasons)
    _emit_config_warnings(events, cfg, _train_count(run_dir))


def _train_count(run_dir: Path) -> int | None:
    """Training examples of a run's split, from its `data` event (None if missing)."""
    events, _ = read_events(run_dir / EVENTS_FILE, 0)
    counts = [e["train_examples"] for e in events if e.get("type") == "data"]
    return int(counts[-1]) if counts and isinstance(counts[-1], int) else None


# ---------------------------------------------------------------------------
# Finding and listing
# ---------------------------------------------------------------------------


_RUN_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def find_run(ref: str) -> Path:
    """A run directory by id, unique id prefix, or its path; never outside the runs folder."""
    root = runs_dir()
    path = Path(ref).expanduser()
    if path.is_absolute() and path.resolve().parent == root.resolve() and path.is_dir():
        return path
    if not _RUN_REF.match(ref) or ".." in ref:
        raise RunNotFoundError(
            f"{ref!r} is not a run id",
            hint="run ids look like 20261129-174055-652808; `tunedeck runs` lists them",
        )
    candidates = sorted(p for p in root.glob(f"{ref}*") if p.is_dir()) if root.is_dir() else []
    exact = [p for p in candidates if p.name == ref]
    if exact:
        return exact[0]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise RunNotFoundError(f"no run matches {ref!r}", hint="`tunedeck runs` lists the runs")
    names = ", ".join(p.name for p in candidates[:5])
    raise RunNotFoundError(
        f"{ref!r} matches {len(candidates)} runs ({names})", hint="give more of the id"
    )


def effective_state(run_dir: Path, status: RunStatus | None) -> str:
    """The worker's state, corrected for a worker that died without saying so."""
    if status is None:
        return "running" if worker_alive(run_dir) else "failed (status unreadable)"
    if status.state in ("running", "stopping") and not worker_alive(run_dir):
        return "failed (worker died)"
    if status.state == "queued" and not worker_alive(run_dir) and not _pid_alive(status.pid):
        return "failed (worker died)" if status.pid else CREATED
    return status.state


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_info(run_dir: Path) -> RunInfo:
    """Status and effective state of one run."""
    status = read_status(run_dir)
    created = (run_dir / EVENTS_FILE).stat().st_ctime if (run_dir / EVENTS_FILE).exists() else 0
    return RunInfo(run_dir.name, run_dir, effective_state(run_dir, status), status, created)


def list_runs() -> list[RunInfo]:
    """All runs, newest first."""
    root = runs_dir()
    if not root.is_dir():
        return []
    # Hidden names are runs being deleted (engine.runs.admin), never listed.
    dirs = [
        p
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / CONFIG_FILE).is_file()
    ]
    return [run_info(p) for p in sorted(dirs, key=lambda p: p.name, reverse=True)]


# ---------------------------------------------------------------------------
# Control
# ---------------------------------------------------------------------------


def request(run_dir: Path, action: Action) -> RunInfo:
    """Ask a live worker to stop, pause, checkpoint or evaluate at its next step."""
    info = run_info(run_dir)
    if info.state not in ("running", "queued", "stopping"):
        raise RunStateError(
            f"run {info.id} is {info.state}; `{action}` needs a running worker",
            hint="`tunedeck resume RUN` continues a paused, stopped or interrupted run",
        )
    send_request(run_dir, action)
    return info


def resume_run(run_dir: Path) -> RunInfo:
    """Start a new worker that continues from the newest valid checkpoint."""
    info = run_info(run_dir)
    if info.state == "completed":
        raise RunStateError(f"run {info.id} has completed; there is nothing to resume")
    if worker_alive(run_dir):
        raise RunStateError(f"run {info.id} is still {info.state}: its worker is alive")
    EventWriter(run_dir).emit("state", state="queued", reason="resume")
    status = info.status or RunStatus(state="queued")
    write_status(run_dir, RunStatus(**{**status.__dict__, "state": "queued", "error": None}))
    start_worker(run_dir)
    return run_info(run_dir)


def follow_events(run_dir: Path, poll_s: float = 0.5) -> Iterator[dict[str, Any]]:
    """Every event of the run from the start, then new ones as they come, until it ends.

    Ends after a final state (stopped, completed, failed, paused) or when the worker died
    without saying so (reported as a synthetic `state` event).
    """
    offset = 0
    while True:
        events, offset = read_events(run_dir / EVENTS_FILE, offset)
        yield from events
        info = run_info(run_dir)
        if info.state in (*FINAL_STATES, "paused") or info.state.startswith("failed"):
            events, offset = read_events(run_dir / EVENTS_FILE, offset)
            yield from events  # what the worker wrote just before it ended
            if info.state == "failed (worker died)":
                yield {"type": "state", "state": info.state, "time": time.time()}
            return
        time.sleep(poll_s)
