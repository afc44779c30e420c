"""Start-up of the wizard to its first painted screen, against a minimal Textual app.

Each program runs in a fresh process on a real pseudo-terminal (100x32), exactly as a user
starts it; the clock stops when a text only its first screen shows has been written to
the terminal (the footer's "Next step" for tunedeck: it is in the first frame of every
step, whatever the step bar abbreviates; the one Static's text for the peer), then
ctrl+q quits it. No Pilot and no hook in the app: what is measured is process
start, imports, compose, mount and the first frame on the wire.

The peers, measured in the same run on the same machine:
- a minimal Textual app that paints one Static: the floor any Textual app pays;
- `python -c "import textual.app"`: the import alone.
The ratio tunedeck / minimal app says what tunedeck adds; the issue asks for under 1 s.

Usage: python bench/tui_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere (bench.summary)
COLUMNS, ROWS = 100, 32
TIMEOUT_S = 30.0
GOAL_S = 1.0

PEER_APP = """
from textual.app import App
from textual.widgets import Static

class Peer(App):
    def compose(self):
        yield Static("peer ready")

Peer().run()
"""


def time_to_text(argv: list[str], marker: bytes, env: dict[str, str]) -> float:
    """Seconds from spawning `argv` on a fresh pty until `marker` appears in its output."""
    master, slave = os.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT, start_new_session=True
    )
    os.close(slave)
    seen = b""
    try:
        while marker not in seen:
            if time.perf_counter() - started > TIMEOUT_S:
                raise TimeoutError(f"{argv[-1][:40]!r} painted nothing in {TIMEOUT_S:.0f} s")
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                seen = seen[-4096:] + os.read(master, 65536)
        elapsed = time.perf_counter() - started
        os.write(master, b"\x11")  # ctrl+q
        _drain_until_exit(master, process)
        return elapsed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def _drain_until_exit(master: int, process: subprocess.Popen[bytes]) -> None:
    """Keep reading the pty while the app shuts down, so its writes never block."""
    deadline = time.perf_counter() + 10
    while process.poll() is None and time.perf_counter() < deadline:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                os.read(master, 65536)
            except OSError:
                break


def time_import(env: dict[str, str]) -> float:
    """Seconds for a fresh interpreter to `import textual.app` and exit."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import textual.app"], env=env, check=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per program (median kept)")
    parser.add_argument("--json", help="write the summary rows (bench/run_all.py) here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tunedeck-bench-") as home:
        env = dict(os.environ, TERM="xterm-256color", TUNEDECK_HOME=home, HF_HUB_OFFLINE="1")
        env.pop("NO_COLOR", None)
        sample = str(ROOT / "sample_data" / "support_tickets.jsonl")
        tunedeck = [sys.executable, "-m", "tui.cli", "--data", sample]
        peer = [sys.executable, "-c", PEER_APP]
        results: dict[str, list[float]] = {"tunedeck": [], "minimal app": [], "import": []}
        for _ in range(args.runs):  # interleaved, so load changes hit all three alike
            results["tunedeck"].append(time_to_text(tunedeck, b"Next step", env))
            results["minimal app"].append(time_to_text(peer, b"peer ready", env))
            results["import"].append(time_import(env))
    median = {name: statistics.median(times) for name, times in results.items()}
    print(f"start-up to first paint, median of {args.runs} runs on a {COLUMNS}x{ROWS} pty")
    for name, value in median.items():
        spread = f"{min(results[name]):.2f}-{max(results[name]):.2f}"
        print(f"  {name:<14} {value:6.2f} s   (range {spread} s)")
    ratio = median["tunedeck"] / median["minimal app"]
    print(f"  ratio tunedeck / minimal Textual app: {ratio:.2f}x")
    verdict = "under" if median["tunedeck"] < GOAL_S else "OVER"
    print(f"  tunedeck is {verdict} the {GOAL_S:.0f} s goal")
    write_startup_summary(args.json, median)
    return 0


def write_startup_summary(path: str | None, median: dict[str, float]) -> None:
    """The row of `make bench`'s table (bench/run_all.py)."""
    from bench.summary import Row, write_summary

    ours, peer = median["tunedeck"], median["minimal app"]
    row = Row("TUI first paint (median)", f"{ours:.2f} s", "minimal Textual app",
              f"{peer:.2f} s", peer / ours, f"< {GOAL_S:.0f} s", ours < GOAL_S)  # fmt: skip
    write_summary(path, "tui_startup", [row])


if __name__ == "__main__":
    sys.exit(main())
