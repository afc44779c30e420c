"""Key presses on the Train screen while a run streams events at full speed, against idle.

The real TunedeckApp runs headless (`run_test(size=(100, 32))`, the compositor renders
every frame as on a terminal; only the bytes are not written) with the real Backend,
attached to a run directory whose events.jsonl already holds --points training points
(a validation point every 50 steps). A separate writer process holds the run's worker
lock (so the run is "running", as with a real worker) and, once told to go, appends
metric events through engine.core.events.EventWriter at --rate events per second until told
to stop. Meanwhile a thread plays the terminal: it sends the key `c` (save a checkpoint:
a real binding, action and backend call) every --interval seconds through the app's
driver, as the input thread does, and times it from sending to the action reaching the
backend (the one backend method is replaced by a clock). Each press's notification is
cleared after it is timed, so toasts do not pile up.

The peer, in the same run: the same app on the same history with a writer that holds
the lock but appends nothing. The ratio is idle p95 / streaming p95 (1.0: streaming costs
nothing). After the stream stops the bench waits until the screen holds every point the
writer wrote (no point may be lost) and reports how many points the chart drew.

Usage: python bench/tui_latency.py [--points 10000] [--rate 2000] [--presses 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

SIZE = (100, 32)
VAL_EVERY = 50
GOAL_MS = 100.0
CHUNK_S = 0.02
"""The writer appends a chunk of events every CHUNK_S seconds."""


def metric(step: int, split: str = "train") -> dict[str, Any]:
    """A metric event's fields as the worker writes them (loss falls, with some noise)."""
    loss = 2.5 / (1 + step / 500) + 0.3 + 0.05 * ((step * 7919) % 13) / 13
    if split == "val":
        return {"split": "val", "step": step, "loss": round(loss + 0.1, 4)}
    return {
        "split": "train", "step": step, "epoch": round(step / 1000, 4), "loss": round(loss, 4),
        "lr": 2e-4, "grad_norm": 0.5, "tokens_per_s": 1500.0, "trained_tokens": step * 900,
        "elapsed_s": step * 0.1, "eta_s": 100.0, "memory": 600 * 2**20,
    }  # fmt: skip


def emit_steps(writer: Any, first: int, last: int) -> int:
    """Append training points first..last (and validation points); returns events written."""
    written = 0
    for step in range(first, last + 1):
        writer.emit("metric", **metric(step))
        written += 1
        if step % VAL_EVERY == 0:
            writer.emit("metric", **metric(step, "val"))
            written += 1
    return written


# -- the writer process ------------------------------------------------------------------


def child_writer(run_dir: Path, first: int, rate: float, limit_s: float) -> None:
    """Hold the worker lock; on "go" append events at `rate`/s until "stop"; report.

    Streaming also stops after `limit_s` seconds, so a stalled viewer cannot make the
    file grow without end.
    """
    from engine.core.control import worker_lock
    from engine.core.events import EventWriter, RunStatus, write_status

    with worker_lock(run_dir):
        write_status(run_dir, RunStatus("running", pid=os.getpid(), step=first - 1))
        print("ready", flush=True)
        sys.stdin.readline()  # "go"
        writer, step, events = EventWriter(run_dir), first, 0
        started = time.perf_counter()
        per_chunk = max(1, round(rate * CHUNK_S))
        while not select.select([sys.stdin], [], [], 0)[0]:  # until "stop"
            if time.perf_counter() - started > limit_s:
                break
            if rate > 0:
                events += emit_steps(writer, step, step + per_chunk - 1)
                step += per_chunk
                # Keep to `rate`: sleep until the events written so far are due.
                time.sleep(max(0.0, started + events / rate - time.perf_counter()))
            else:
                time.sleep(CHUNK_S)
        seconds = time.perf_counter() - started
        sys.stdin.readline()
        report = {"last_step": step - 1, "events": events, "seconds": seconds}
        print(json.dumps(report), flush=True)
        sys.stdin.readline()  # hold the lock (the run stays "running") until told to quit


# -- the app side --------------------------------------------------------------------------


def make_run(home: Path, points: int) -> Path:
    """A run directory whose history holds `points` training points."""
    from engine.core.events import EventWriter

    run_dir = home / "runs" / "20261129-120000-bench0"
    run_dir.mkdir(parents=True)
    writer = EventWriter(run_dir)
    writer.emit("state", state="queued")
    writer.emit("state", state="running")
    emit_steps(writer, 1, points)
    return run_dir


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile (0..1) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def wait_until(pilot: Any, condition: Any, timeout: float) -> None:
    """Pause until `condition()` holds; RuntimeError after `timeout` seconds."""
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"condition not met after {timeout:.0f} s")
        await pilot.pause(0.1)


class Presser(threading.Thread):
    """Plays the terminal: sends `c` through the driver, times it to the backend call."""

    def __init__(self, app: Any, handled: threading.Event, presses: int, interval: float):
        super().__init__(daemon=True)
        self.app, self.handled, self.presses, self.interval = app, handled, presses, interval
        self.latencies_ms: list[float] = []
        self.lost = 0

    def run(self) -> None:
        from textual import events

        for _ in range(self.presses):
            time.sleep(self.interval)
            self.handled.clear()
            started = time.perf_counter()
            key = events.Key("c", "c")
            key.set_sender(self.app)
            self.app._driver.send_message(key)  # what the driver's input thread does
            if not self.handled.wait(10.0):
                self.lost += 1
                continue
            self.latencies_ms.append((self.app.backend.handled_at - started) * 1000)
            self.app.call_from_thread(self.app.clear_notifications)


def start_writer(run_dir: Path, first: int, rate: float, limit_s: float) -> subprocess.Popen:
    """The writer process (child_writer), once it holds the lock and the run is running."""
    writer = subprocess.Popen(
        [sys.executable, __file__, "--child", str(run_dir), str(first), str(rate), str(limit_s)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert writer.stdout is not None
    if writer.stdout.readline().strip() != "ready":
        writer.kill()
        raise RuntimeError("the writer process did not start")
    return writer


async def measure(run_dir: Path, points: int, rate: float, presses: int, interval: float):
    """One session of the app on `run_dir` with a writer at `rate`: latencies and counts."""
    from tui.app import TunedeckApp
    from tui.backend import Backend
    from tui.screens.train import TrainScreen
    from tui.widgets.loss_chart import LossChart

    handled = threading.Event()

    class TimedBackend(Backend):
        handled_at = 0.0

        def request(self, run_dir: Path, action: Any) -> None:
            self.handled_at = time.perf_counter()
            handled.set()

    writer = start_writer(run_dir, points + 1, rate, limit_s=presses * interval * 3 + 30)
    assert writer.stdin is not None and writer.stdout is not None
    try:
        app = TunedeckApp(TimedBackend(), ROOT / "sample_data" / "support_tickets.jsonl",
                          "smollm2-135m", run_dir)  # fmt: skip
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, TrainScreen)
            chart = screen.query_one(LossChart)
            await wait_until(pilot, lambda: len(chart.train) == points, 120)
            await wait_until(pilot, lambda: screen.check_action("control", ()) is True, 30)
            writer.stdin.write("go\n")
            writer.stdin.flush()
            presser = Presser(app, handled, presses, interval)
            presser.start()
            while presser.is_alive():
                await pilot.pause(0.1)
            writer.stdin.write("stop\n")
            writer.stdin.flush()
            report = json.loads(await asyncio.to_thread(writer.stdout.readline))
            expected_train = report["last_step"]
            await wait_until(pilot, lambda: len(chart.train) == expected_train, 120)
            await pilot.pause(0.5)  # one more redraw tick with everything in
            result = {
                "latencies_ms": presser.latencies_ms,
                "lost_presses": presser.lost,
                "events_streamed": report["events"],
                "stream_s": report["seconds"],
                "train_written": expected_train,
                "train_held": len(screen.history.train),
                "train_charted": len(chart.train),
                "val_held": len(chart.val),
                "val_written": expected_train // VAL_EVERY,
                "drawn": chart.drawn,
                "redraws": chart.redraws,
            }
        writer.stdin.write("quit\n")
        writer.stdin.flush()
        writer.wait(30)
        return result
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()


def describe(name: str, result: dict[str, Any]) -> str:
    lat = result["latencies_ms"]
    rate = result["events_streamed"] / result["stream_s"] if result["stream_s"] else 0
    return (
        f"  {name:<10} key -> action: median {statistics.median(lat):6.1f} ms  "
        f"p95 {percentile(lat, 0.95):6.1f} ms  max {max(lat):6.1f} ms  ({len(lat)} presses, "
        f"{result['lost_presses']} lost); {result['events_streamed']:,} events streamed "
        f"({rate:,.0f}/s); chart redraws {result['redraws']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000, help="history before streaming")
    parser.add_argument("--rate", type=float, default=2000, help="events/s while streaming")
    parser.add_argument("--presses", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between presses")
    parser.add_argument("--json", help="write the summary rows (bench/run_all.py) here")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_dir, first, rate, limit_s = args.child
        child_writer(Path(run_dir), int(first), float(rate), float(limit_s))
        return 0
    with tempfile.TemporaryDirectory(prefix="tunedeck-bench-") as home:
        os.environ["TUNEDECK_HOME"] = home
        results = {}
        for name, rate in (("idle", 0.0), ("streaming", args.rate)):
            run_dir = make_run(Path(home) / name, args.points)
            results[name] = asyncio.run(
                measure(run_dir, args.points, rate, args.presses, args.interval)
            )
    print(f"Train screen {SIZE[0]}x{SIZE[1]}, history {args.points:,} training points; key `c`")
    for name, result in results.items():
        print(describe(name, result))
    return report(results, args.json)


def report(results: dict[str, dict[str, Any]], json_path: str | None) -> int:
    """Print the verdicts and write the summary rows."""
    from bench.summary import Row, write_summary

    stream, idle = results["streaming"], results["idle"]
    p95, idle_p95 = percentile(stream["latencies_ms"], 0.95), percentile(idle["latencies_ms"], 0.95)
    kept = all(
        r["train_held"] == r["train_charted"] == r["train_written"]
        and r["val_held"] == r["val_written"]
        for r in results.values()
    )
    drawn = stream["drawn"]
    downsampled = drawn is not None and sum(drawn) < stream["train_charted"] + stream["val_held"]
    print(f"  streaming p95 / idle p95: {p95 / idle_p95:.2f}x; goal: p95 under {GOAL_MS:.0f} ms")
    print(f"  points kept: {stream['train_charted']:,}/{stream['train_written']:,} train, "
          f"{stream['val_held']:,}/{stream['val_written']:,} val; drawn: {drawn}")  # fmt: skip
    rows = [
        Row("TUI key latency while streaming (p95)", f"{p95:.0f} ms",
            "same app, idle run", f"{idle_p95:.0f} ms", idle_p95 / p95,
            f"< {GOAL_MS:.0f} ms", p95 < GOAL_MS and not stream["lost_presses"]),
        Row("TUI chart keeps every point", f"{stream['train_charted']:,} train points",
            "points written", f"{stream['train_written']:,}", None, "none lost", kept),
        Row("TUI chart draws downsampled", f"{sum(drawn) if drawn else '-'} points drawn",
            "points held", f"{stream['train_charted'] + stream['val_held']:,}", None,
            "downsampled", downsampled),
    ]  # fmt: skip
    write_summary(json_path, "tui_latency", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
