"""`make bench`: every benchmark under bench/, one after another, then one table.

Each bench runs in its own process (sequentially: they would steal each other's cores),
prints its usual report, and writes its rows to a JSON file (bench/summary.py); this
script gathers them into one table: benchmark | tunedeck | peer | peer figure | ratio |
target | met. A ratio is tunedeck's speed over the peer's, both measured in the same run
(> 1: tunedeck is faster). The speed benches take about 8 minutes on a 2-core CPU; the
outcome bench (bench/outcome.py: the default flow trained and evaluated on both sample
datasets) adds about 25 more, the loop bench (bench/loop.py: two runs per dataset, a
review of a prompt pool between them) about 60 more. `--quick` is a smoke test of a few
minutes whose figures are too small to judge the targets by. A bench that exits non-zero
(an outcome below its target) fails `make bench`, with its rows still in the table.

Usage: python bench/run_all.py [--quick] [--only NAME,NAME]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from bench.summary import Row, read_summary  # noqa: E402

BENCHES: dict[str, tuple[list[str], list[str]]] = {
    # name: (arguments of the full run, arguments of --quick)
    "tui_startup": (["--runs", "5"], ["--runs", "2"]),
    "tui_latency": (["--presses", "40"], ["--presses", "15", "--points", "3000"]),
    "model_load": (["--rounds", "2"], ["--rounds", "1"]),
    "eval_generation": ([], ["--max-examples", "4"]),
    "lint_scale": (["--sizes", "10000", "100000"], ["--sizes", "2000", "20000"]),
    "train_throughput": (["--steps", "4"], ["--steps", "3", "--sides", "tunedeck,trl_defaults"]),
    "time_split": ([], ["--examples", "16"]),
    "outcome": ([], ["--quick", "--only", "tickets"]),
    "loop": ([], ["--quick", "--only", "tickets"]),
    "gguf_export": ([], ["--quants", "q8_0"]),
    "llamacpp_check": ([], ["--quick", "--max-examples", "4", "--quants", "f16,q4_k_m"]),
}
COLUMNS = ("benchmark", "tunedeck", "peer", "peer figure", "ratio", "target", "met")


def run_bench(name: str, args: list[str], out: Path) -> tuple[list[Row], float]:
    """Run one bench (its output goes straight to ours); its rows and its seconds."""
    print(f"\n== bench/{name}.py {' '.join(args)}", flush=True)
    json_path = out / f"{name}.json"
    started = time.perf_counter()
    process = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), *args, "--json", str(json_path)],
        cwd=ROOT,
    )
    seconds = time.perf_counter() - started
    if not json_path.is_file():
        failed = f"FAILED (exit {process.returncode})"
        return [Row(name, failed, "-", "-", None, "-", False)], seconds
    rows = read_summary(json_path)[1]
    if process.returncode != 0:  # e.g. an outcome below its target: its rows say which
        rows.append(Row(name, f"FAILED (exit {process.returncode})", "-", "-", None, "-", False))
    return rows, seconds


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table (readable in a terminal, pasteable into RESULTS.md)."""
    met = {True: "yes", False: "NO", None: "-"}
    cells = [COLUMNS] + [
        (r.benchmark, r.figure, r.peer, r.peer_figure,
         "-" if r.ratio is None else f"{r.ratio:.2f}x", r.target, met[r.met])
        for r in rows
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in cells]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test of a few minutes")
    parser.add_argument("--only", help=f"comma-separated, from {','.join(BENCHES)}")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown bench(es) {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    rows: list[Row] = []
    times: list[str] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tunedeck-bench-") as out:
        for name in names:
            full, quick = BENCHES[name]
            bench_rows, seconds = run_bench(name, quick if args.quick else full, Path(out))
            rows += bench_rows
            times.append(f"{name} {seconds:.0f} s")
    total = time.perf_counter() - started
    print(f"\n== {'quick ' if args.quick else ''}benchmarks, {time.strftime('%Y-%m-%d %H:%M')}; "
          f"ratio: tunedeck's speed / the peer's, measured in the same run\n")  # fmt: skip
    print(table(rows))
    print(f"\n{total / 60:.1f} min in all: {', '.join(times)}")
    # Unmet speed targets are in the table; a bench that could not run, or an outcome below
    # its target, fails `make bench`.
    return 1 if any(r.figure.startswith("FAILED") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
