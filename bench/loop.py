"""Loop benchmark: does a round of review make the next run better?

For each bundled sample dataset, the loop as a user runs it with the CLI alone:

1. run A: `tunedeck train --data FILE --follow` (the default flow, nothing set);
2. `tunedeck eval A --data POOL`: run A answers the unlabelled prompt pool;
3. review: each answer accepted when it is right, else corrected, decided from a labelled
   copy of the pool kept for the benchmark (bench/data/*_pool_labels.jsonl), i.e. the
   corrections a person would type; saved with `tunedeck review A --data POOL --import`;
4. `tunedeck data add A --data POOL --out grown.jsonl`, then run B:
   `tunedeck train --data grown.jsonl --like A --follow`;
5. both runs scored on the held-out test file (`tunedeck eval RUN --data TEST --systems
   tuned`), and `tunedeck compare A B --data TEST`: each run's primary metric with its
   95 % interval, B's wins / losses against A and the exact sign test.

It reports whether B beats A, whatever the answer; it judges no target. Each step's result
is kept in the bench's TUNEDECK_HOME (`--home DIR` to reuse one), so an interrupted bench
resumes where it stopped.

Usage: python bench/loop.py [--only tickets,orders] [--quick] [--home DIR] [--json OUT]
`--quick` trains 2 steps and scores 4 examples: a smoke test whose figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from bench.outcome import bench_env, cli  # noqa: E402  (tunedeck subcommands, as outcome runs them)
from bench.summary import Row, write_summary  # noqa: E402


@dataclass(frozen=True)
class Dataset:
    """A sample dataset, its pool (and the pool's labelled copy) and its test file."""

    name: str
    data: str
    pool: str
    labels: str
    test: str
    key: str | None
    """The class label key an answer must get right to be accepted (None: every field)."""


DATASETS = {
    "tickets": Dataset(
        "support tickets", "sample_data/support_tickets.jsonl",
        "sample_data/support_tickets_pool.jsonl", "bench/data/support_tickets_pool_labels.jsonl",
        "sample_data/support_tickets_test.jsonl", "category",
    ),
    "orders": Dataset(
        "order emails", "sample_data/order_emails.jsonl", "sample_data/order_emails_pool.jsonl",
        "bench/data/order_emails_pool_labels.jsonl", "sample_data/order_emails_test.jsonl", None,
    ),
}  # fmt: skip


def last_json(text: str) -> Any:
    return json.loads(text.strip().splitlines()[-1])


def is_right(answer: str | None, label: str, key: str | None) -> bool:
    """Would a person accept `answer`: valid JSON with the label's keys, and the class
    label right (tickets: the reply may differ) or every field right (orders)."""
    try:
        got, want = json.loads(answer or ""), json.loads(label)
    except ValueError:
        return False
    if not isinstance(got, dict) or set(got) != set(want):
        return False
    if key is not None:
        return got.get(key) == want.get(key) and bool(str(got.get("reply", "x")).strip())
    return got == want


def review_actions(listing: list[dict[str, Any]], labels: list[str], key: str | None) -> list[str]:
    """The review a person would make, as `tunedeck review --import` lines."""
    lines = []
    for item in listing:
        label = labels[item["index"] - 1]  # the table's number counts from 1
        if is_right(item["answer"], label, key):
            lines.append(json.dumps({"index": item["index"], "accept": True}))
        else:
            lines.append(json.dumps({"index": item["index"], "answer": label}))
    return lines


class Steps:
    """Each step's result, kept in the home so that a rerun resumes (`--home`)."""

    def __init__(self, home: Path, name: str) -> None:
        self.path = home / f"loop-{name}.json"
        self.done: dict[str, Any] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def run(self, step: str, work: Any) -> Any:
        if step not in self.done:
            started = time.perf_counter()
            self.done[step] = {"result": work(), "seconds": time.perf_counter() - started}
            self.path.write_text(json.dumps(self.done, indent=1))
        return self.done[step]["result"]


def run_one(ds: Dataset, home: Path, env: dict[str, str], quick: bool) -> dict[str, Any]:
    """The loop on one dataset; what `compare` printed, and the review's counts."""
    steps = Steps(home, ds.name.replace(" ", "_"))
    short = ["--max-steps", "2"] if quick else []
    few = ["--max-examples", "4"] if quick else []

    def train(data: str, *extra: str) -> dict[str, Any]:
        out = cli(["train", "--data", data, "--json", "--follow", *extra, *short], env)
        return json.loads(next(line for line in out.splitlines() if line.startswith("{")))

    a = steps.run("train A", lambda: train(ds.data))["id"]
    pool_eval = ["eval", a, "--data", ds.pool, "--no-probes", "--json", *few]
    steps.run("eval A on the pool", lambda: last_json(cli(pool_eval, env))["verdict"])
    listing = last_json(cli(["review", a, "--data", ds.pool, "--json"], env))
    labelled = Path(ROOT, ds.labels).read_text().splitlines()
    labels = [json.loads(line)["messages"][-1]["content"] for line in labelled]
    actions = review_actions([i for i in listing if i["answer"] is not None], labels, ds.key)
    review_file = home / f"review-{a}.jsonl"
    review_file.write_text("\n".join(actions) + "\n")
    cli(["review", a, "--data", ds.pool, "--import", str(review_file)], env)
    grown = home / f"grown-{a}.jsonl"
    add = ["data", "add", a, "--data", ds.pool, "--out", str(grown), "--force"]
    added = steps.run("data add", lambda: cli(add, env))
    b = steps.run("train B", lambda: train(str(grown), "--like", a))["id"]
    for run in (a, b):
        test_eval = ["eval", run, "--data", ds.test, "--systems", "tuned", "--no-probes",
                     "--json", *few]  # fmt: skip
        verdict = lambda args=test_eval: last_json(cli(args, env))["verdict"]  # noqa: E731
        steps.run(f"eval {run} on the test file", verdict)
    compared = last_json(cli(["compare", a, b, "--data", ds.test, "--json"], env))
    accepted = sum('"accept"' in line for line in actions)
    return {"dataset": ds.name, "a": a, "b": b, "accepted": accepted,
            "corrected": len(actions) - accepted, "added": added, "compare": compared,
            "seconds": {k: round(v["seconds"]) for k, v in steps.done.items()}}  # fmt: skip


def report(result: dict[str, Any]) -> str:
    """The dataset's lines: review counts, then what `compare --json` says."""
    compared = result["compare"]
    lines = [
        f"## {result['dataset']}: A {result['a']} -> B {result['b']}",
        f"review of the pool: {result['accepted']} accepted, {result['corrected']} corrected",
        result["added"].strip(),
        json.dumps(compared, indent=1)[:4000],
        f"seconds per step: {result['seconds']}",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help=f"comma-separated, from {','.join(DATASETS)}")
    parser.add_argument("--quick", action="store_true", help="a smoke test (2 steps, 4 examples)")
    parser.add_argument("--home", help="TUNEDECK_HOME to keep (and resume) the runs in")
    parser.add_argument("--json", help="write the make-bench rows here")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(DATASETS)
    home = Path(args.home or tempfile.mkdtemp(prefix="tunedeck-loop-"))
    env = bench_env(home)
    rows = []
    for name in names:
        ds = DATASETS[name]
        print(f"== {ds.name}: the loop (home {home})", file=sys.stderr, flush=True)
        result = run_one(ds, home, env, args.quick)
        print(report(result), flush=True)
        rows.append(_row(result))
    if args.json:
        write_summary(Path(args.json), "loop", rows)
    return 0


def _row(result: dict[str, Any]) -> Row:
    """B against A on the test file's primary metric (the ratio: B / A)."""
    compared = result["compare"]
    runs = compared.get("runs", [])
    first, second = ((runs + [{}, {}])[i].get("primary") or {} for i in range(2))
    a, b = first.get("mean"), second.get("mean")
    ratio = (b / a) if isinstance(a, float) and isinstance(b, float) and a else None
    sentence = (compared.get("sentences") or [""])[0]
    return Row(f"loop: {result['dataset']} (B after review vs A)", _measure(second), "run A",
               _measure(first), ratio, sentence[:100] or "report only", None)  # fmt: skip


def _measure(measure: dict[str, Any]) -> str:
    mean, low, high = measure.get("mean"), measure.get("low"), measure.get("high")
    if mean is None:
        return "-"
    return f"{mean:.2f}" + (f" [{low:.2f}, {high:.2f}]" if low is not None else "")


if __name__ == "__main__":
    raise SystemExit(main())
