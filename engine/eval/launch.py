"""Evaluate a run: base zero-shot, base few-shot and fine-tuned on the held-out examples.

Held out means the run's validation split, or a separate test file (`options.data`,
engine.eval.sets): the checkpoint kept was chosen on validation loss, so a test file is
the cleaner judge of it.

`run_eval(run_dir, options)` does it in this process (`tunedeck eval RUN`);
`start_eval(run_dir, options)` starts `python -m engine.eval.launch RUN_DIR [flags]` as a
detached process (the TUI), which survives the viewer like the training worker does.
Either way an exclusive flock on `<run>/eval.lock` keeps one evaluation per run, progress
goes to the run's events.jsonl (`eval_started`, `eval_progress` {phase, system, done,
total}, `eval_note`, `eval_done` {verdict}, `eval_failed` {error, hint}, `eval_stopped`),
and results go to `<run>/eval/` (layout in engine.eval.store), row by row: an interrupted
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
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.core.control import lock_holder, pid_lock
from engine.core.errors import TunedeckError
from engine.core.process import spawn_detached
from engine.eval.options import (
    EvalOptions,
    add_arguments,
    from_args,
    to_argv,
)
from engine.eval.plan import check_eval_data, check_validation_data, plan_systems
from engine.eval.store import LOCK_FILE, LOG_FILE, eval_dir

EventSink = Callable[[dict[str, Any]], None]
"""Receives every evaluation event as it is written (the CLI prints progress from it)."""


class EvalRunningError(TunedeckError):
    """Another evaluation of the run holds its lock."""

    exit_code = 3


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
    command = [sys.executable, "-m", "engine.eval", str(run_dir), *to_argv(options)]
    return spawn_detached(command, cwd=run_dir, log=eval_dir(run_dir) / LOG_FILE)


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
    from engine.core.events import EventWriter
    from engine.eval.runner import Evaluation

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
    parser = argparse.ArgumentParser(prog="python -m engine.eval.launch")
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
