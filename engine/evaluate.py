"""Evaluate a run: base zero-shot, base few-shot and fine-tuned on the held-out examples.

Held out means the run's validation split, or a separate test file (`options.data`,
engine.eval_sets): the checkpoint kept was chosen on validation loss, so a test file is
the cleaner judge of it.

`run_eval(run_dir, options)` does it in this process (`tunedeck eval RUN`);
`start_eval(run_dir, options)` starts `python -m engine.evaluate RUN_DIR [flags]` as a
detached process (the TUI), which survives the viewer like the training worker does.
Either way an exclusive flock on `<run>/eval.lock` keeps one evaluation per run, progress
goes to the run's events.jsonl (`eval_started`, `eval_progress` {phase, system, done,
total}, `eval_note`, `eval_done` {verdict}, `eval_failed` {error, hint}, `eval_stopped`),
and results go to `<run>/eval/` (layout in engine.eval_store), row by row: an interrupted
evaluation resumes where it stopped.

Baseline before training: the base systems need only the run's data split, which exists
as soon as the run directory does, so `start_eval(run_dir, EvalOptions(systems=BASE_SYSTEMS))`
may run while the training worker trains. The two processes share nothing but the
directory (different locks, different files). On CPU they share the cores, so the
evaluation then takes half of torch's threads, leaving the rest to training: both are
slower, neither is wrong. The fine-tuned system is evaluated later from the adapter;
base rows already generated are reused.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.control import lock_holder, pid_lock
from engine.errors import TunedeckError
from engine.eval_options import (
    BASE_FEW,
    BASE_ZERO,
    TUNED,
    EvalOptions,
    add_arguments,
    checkpoint_system,
    from_args,
    is_checkpoint_system,
    to_argv,
)
from engine.eval_store import LOCK_FILE, LOG_FILE, eval_dir, file_digest

EventSink = Callable[[dict[str, Any]], None]
"""Receives every evaluation event as it is written (the CLI prints progress from it)."""
ADAPTER_DIR = "adapter"
CHECKPOINT_DIR = "checkpoints"


class EvalRunningError(TunedeckError):
    """Another evaluation of the run holds its lock."""

    exit_code = 3


class NoValidationDataError(TunedeckError):
    """The run has no held-out examples to evaluate on."""


class NoAdapterError(TunedeckError):
    """The fine-tuned system was asked for, but the run has no adapter yet."""


# ---------------------------------------------------------------------------
# One evaluation per run: the lock, and the detached process
# ---------------------------------------------------------------------------


def eval_lock(run_dir: Path) -> contextlib.AbstractContextManager[None]:
    """Hold the run's evaluation lock, or raise EvalRunningError at once.

    An flock: the kernel drops it when the holder dies, so a killed evaluation never
    leaves the run locked.
    """
    busy = EvalRunningError(
        f"an evaluation of run {run_dir.name} is already running",
        hint="wait for it (its progress is in the run's events) or stop it",
    )
    return pid_lock(run_dir / LOCK_FILE, busy)


def eval_pid(run_dir: Path) -> int | None:
    """The pid of the running evaluation of the run, or None when none runs."""
    return lock_holder(run_dir / LOCK_FILE)


def eval_running(run_dir: Path) -> bool:
    """True while some process evaluates the run."""
    return eval_pid(run_dir) is not None


def start_eval(run_dir: Path, options: EvalOptions) -> int:
    """Check what can be checked cheaply, then start a detached evaluation; its pid.

    Raises:
        EvalRunningError, NoValidationDataError, NoAdapterError: before anything starts.
    """
    if eval_running(run_dir):
        raise EvalRunningError(f"an evaluation of run {run_dir.name} is already running")
    check_eval_data(run_dir, options)
    plan_systems(run_dir, options)
    command = [sys.executable, "-m", "engine.evaluate", str(run_dir), *to_argv(options)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(eval_dir(run_dir) / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            command,
            cwd=run_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # closing the TUI or the SSH session does not stop it
            close_fds=True,
        )
    return process.pid


def stop_eval(run_dir: Path) -> bool:
    """Ask a running evaluation to stop (SIGTERM: rows written so far are kept)."""
    pid = eval_pid(run_dir)
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


# ---------------------------------------------------------------------------
# What to evaluate
# ---------------------------------------------------------------------------


def check_eval_data(run_dir: Path, options: EvalOptions) -> None:
    """Raise when there is nothing to score: no validation split, or a bad test file.

    Raises:
        NoValidationDataError: no test file given and the run has no validation examples.
        EvalDataError: the test file is unreadable or has a bad record (file and line).
    """
    if options.data:
        from engine.eval_sets import read_test_file

        read_test_file(options.data)
    else:
        check_validation_data(run_dir)


def check_validation_data(run_dir: Path) -> None:
    """Raise NoValidationDataError when the run's validation split is empty."""
    path = run_dir / "data" / "val.jsonl"
    if not path.is_file() or path.stat().st_size == 0:
        raise NoValidationDataError(
            f"run {run_dir.name} has no validation examples to evaluate on",
            hint="score a separate test file (tunedeck eval RUN --data FILE), or start a run "
            "with a validation split (data.val_fraction > 0, or --val-data FILE); examples "
            "the model trained on say nothing about what it learned",
        )


def has_adapter(path: Path) -> bool:
    """A PEFT adapter directory with its config and weights."""
    return (path / "adapter_config.json").is_file() and any(path.glob("adapter_model.*"))


def checkpoint_adapters(run_dir: Path) -> dict[int, Path]:
    """Complete saved checkpoints that hold an adapter, by step."""
    from engine import checkpoints

    return {
        step: path
        for step, path in checkpoints.checkpoints_by_step(run_dir / CHECKPOINT_DIR)
        if checkpoints.is_valid(path) and has_adapter(path)
    }


def plan_systems(run_dir: Path, options: EvalOptions) -> tuple[list[str], list[str]]:
    """The systems this evaluation covers, and notes for the user about the choice.

    Raises:
        NoAdapterError: `tuned` was asked for explicitly and there is no adapter yet.
    """
    from engine.control import worker_alive

    notes: list[str] = []
    adapter = has_adapter(run_dir / ADAPTER_DIR)
    training = worker_alive(run_dir)
    if options.systems is None:
        systems = [BASE_ZERO, BASE_FEW] + ([TUNED] if adapter else [])
        if not adapter:
            notes.append("no fine-tuned adapter yet: evaluating the base model only")
    else:
        systems = list(dict.fromkeys(options.systems))
        if TUNED in systems and not adapter:
            raise NoAdapterError(
                f"run {run_dir.name} has no fine-tuned adapter yet",
                hint="the adapter appears at the first validation step; evaluate the base "
                "model meanwhile with --systems base_zero,base_few (or --baseline)",
            )
    if TUNED in systems and training:
        notes.append("training is still running: evaluating the best adapter so far")
    if BASE_FEW in systems and options.few_shot == 0:
        systems.remove(BASE_FEW)
        notes.append("--few-shot 0: the few-shot system is the zero-shot one, skipped")
    if options.checkpoints or any(is_checkpoint_system(s) for s in systems):
        systems = _with_checkpoints(run_dir, systems, options.checkpoints, notes)
    if not systems:
        raise TunedeckError("nothing to evaluate", hint="choose systems with --systems")
    return systems, notes


def _with_checkpoints(
    run_dir: Path, systems: list[str], every: bool, notes: list[str]
) -> list[str]:
    """`systems` with the checkpoints asked for (all of them with `every`), step order.

    Raises:
        NoAdapterError: a checkpoint asked for by step is not saved (or not complete).
    """
    found = checkpoint_adapters(run_dir)
    asked = sorted(int(s.split("@", 1)[1]) for s in systems if is_checkpoint_system(s))
    missing = [step for step in asked if step not in found]
    if missing:
        saved = ", ".join(str(step) for step in sorted(found)) or "none"
        raise NoAdapterError(
            f"run {run_dir.name} has no complete checkpoint at step "
            f"{', '.join(map(str, missing))} (saved: {saved})",
            hint="checkpoints beyond the run's save_total_limit are deleted; "
            "--checkpoints evaluates every one that exists",
        )
    if every and not found:
        notes.append("no complete checkpoint with an adapter to evaluate")
    steps = sorted(set(asked) | (set(found) if every else set()))
    plain = [s for s in systems if not is_checkpoint_system(s)]
    return plain + [checkpoint_system(step) for step in steps]


def adapter_digest(path: Path) -> str:
    """Content hash of an adapter's files; retried while training swaps the directory."""
    for _ in range(20):
        try:
            return file_digest([p for p in path.iterdir() if p.suffix in (".json", ".safetensors")])
        except FileNotFoundError:
            time.sleep(0.1)  # adapter/ is replaced by two renames; it is back in a moment
    raise TunedeckError(f"the adapter {path} keeps disappearing", hint="try again")


@dataclass(frozen=True)
class ModelGroup:
    """Systems that share loaded weights: the base model, or the base plus one adapter."""

    name: str
    """`base`, `tuned` or `tuned@<step>`: the key of its loss and probe rows."""
    adapter: Path | None
    systems: tuple[str, ...]


def model_groups(run_dir: Path, systems: list[str]) -> list[ModelGroup]:
    """Group systems by the weights they need, base first (it needs no adapter load)."""
    groups = []
    base = tuple(s for s in systems if s in (BASE_ZERO, BASE_FEW))
    if base:
        groups.append(ModelGroup("base", None, base))
    if TUNED in systems:
        groups.append(ModelGroup(TUNED, run_dir / ADAPTER_DIR, (TUNED,)))
    found = checkpoint_adapters(run_dir) if any("@" in s for s in systems) else {}
    for system in systems:
        if "@" in system:
            step = int(system.split("@", 1)[1])
            groups.append(ModelGroup(system, found[step], (system,)))
    return groups


# ---------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------


def run_eval(
    run_dir: Path, options: EvalOptions | None = None, on_event: EventSink | None = None
) -> dict[str, Any]:
    """Evaluate the run in this process (resuming earlier work); returns the summary.

    Raises:
        EvalRunningError: another evaluation of the run is running.
        TunedeckError: no validation data, no adapter for an explicit `tuned`, an
            unusable model or judge; an `eval_failed` event says the same.
        KeyboardInterrupt: interrupted (or SIGTERM in the detached process); rows
            generated so far are kept and an `eval_stopped` event is written.
    """
    from engine.eval_runner import Evaluation
    from engine.events import EventWriter

    options = options or EvalOptions()
    writer = EventWriter(run_dir)

    def emit(type_: str, **fields: Any) -> None:
        event = writer.emit(type_, **fields)
        if on_event is not None:
            on_event(event)

    with eval_lock(run_dir):
        try:
            if not options.data:  # a test file is read (and checked) by the evaluation
                check_validation_data(run_dir)
            systems, notes = plan_systems(run_dir, options)
            return Evaluation(run_dir, options, systems, notes, emit).run()
        except TunedeckError as exc:
            emit("eval_failed", error=exc.message, hint=exc.hint)
            raise
        except KeyboardInterrupt:
            emit("eval_stopped", reason="interrupted; rows generated so far are kept")
            raise
        except Exception as exc:
            emit("eval_failed", error=f"{type(exc).__name__}: {exc}", hint="see eval/eval.log")
            raise


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Entry point of the detached evaluation process."""
    parser = argparse.ArgumentParser(prog="python -m engine.evaluate")
    parser.add_argument("run_dir", metavar="RUN_DIR")
    add_arguments(parser)
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir).resolve()
    signal.signal(signal.SIGTERM, _raise_interrupt)  # stop_eval: end after the current row
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal is not a reason to stop
    try:
        summary = run_eval(run_dir, from_args(args))
    except EvalRunningError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except TunedeckError as exc:
        print(f"error: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 130
    print(summary["verdict"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
