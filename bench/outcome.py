"""Outcome benchmark: does the default flow end with a model that does the task?

For each bundled sample dataset, exactly what a new user does with no override:
`tunedeck train --data FILE --follow` (the data-aware recipe chooses everything), then
`tunedeck eval RUN --data TEST` on the dataset's held-out test file (examples that played
no part in training or in choosing the checkpoint) with the base model zero- and few-shot
beside the fine-tuned one. One table: the primary metric of fine-tuned and few-shot base
with 95 % intervals, the paired test, valid JSON, optimizer steps and wall time.

Exits non-zero when an outcome falls below the targets (issue 13, "Done when"):
- support tickets: fine-tuned category accuracy >= 0.9 and valid JSON >= 0.95, training
  (the `tunedeck train --follow` wall time, model load included) <= 10 minutes;
- order emails: fine-tuned beats few-shot base on its primary metric, significantly
  (exact sign test, p < 0.05).

Usage: python bench/outcome.py [--only tickets,orders] [--quick] [--json OUT]
`--quick` trains 2 steps and scores 4 examples: a smoke test whose figures mean nothing
(targets are not judged).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from bench.summary import Row, write_summary  # noqa: E402

TUNEDECK = [sys.executable, "-m", "tui.cli"]
TRAIN_LIMIT_S = 600.0


@dataclass(frozen=True)
class Dataset:
    """A bundled sample dataset, its held-out test file and what counts as success."""

    name: str
    data: str
    test: str
    min_primary: float | None
    """Fine-tuned primary metric at least this (None: no absolute target)."""
    min_valid_json: float | None
    train_limit_s: float | None
    must_beat_few_shot: bool
    """Fine-tuned must beat few-shot base with p < 0.05."""


DATASETS = {
    "tickets": Dataset(
        "support tickets", "sample_data/support_tickets.jsonl",
        "sample_data/support_tickets_test.jsonl", 0.9, 0.95, TRAIN_LIMIT_S, True,
    ),
    "orders": Dataset(
        "order emails", "sample_data/order_emails.jsonl",
        "sample_data/order_emails_test.jsonl", None, None, None, True,
    ),
}  # fmt: skip


def cli(args: list[str], env: dict[str, str]) -> str:
    """Run a tunedeck subcommand; its stdout. Progress goes to our stderr."""
    done = subprocess.run([*TUNEDECK, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"tunedeck {' '.join(args)} failed with exit {done.returncode}")
    return done.stdout


def bench_env(home: Path) -> dict[str, str]:
    """The environment of tunedeck commands run in `home` as TUNEDECK_HOME, offline; the
    user's converted default model is linked in when their TUNEDECK_HOME has one (it skips
    the ~20 s conversion)."""
    home.mkdir(parents=True, exist_ok=True)
    user_models = Path(os.environ.get("TUNEDECK_HOME", "")) / "models"
    if os.environ.get("TUNEDECK_HOME") and user_models.is_dir() and not (home / "models").exists():
        os.symlink(user_models, home / "models")
    return dict(os.environ, TUNEDECK_HOME=str(home), HF_HUB_OFFLINE="1")


def run_one(ds: Dataset, env: dict[str, str], quick: bool) -> dict[str, Any]:
    """Train with the defaults, then evaluate on the test file; the facts of both."""
    started = time.perf_counter()
    train_args = ["train", "--data", ds.data, "--json", "--follow"]
    out = cli([*train_args, "--max-steps", "2"] if quick else train_args, env)
    train_s = time.perf_counter() - started
    info = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    eval_args = ["eval", info["id"], "--data", ds.test, "--no-probes", "--json"]
    started = time.perf_counter()
    summary = json.loads(cli([*eval_args, "--max-examples", "4"] if quick else eval_args, env)
                         .strip().splitlines()[-1])  # fmt: skip
    eval_s = time.perf_counter() - started
    # The validation split too: the set that chose the checkpoint, as `tunedeck eval` scores
    # by default (reported beside the test file, not judged: it is not independent).
    val_args = ["eval", info["id"], "--no-probes", "--json"]
    val_summary = json.loads(cli([*val_args, "--max-examples", "4"] if quick else val_args, env)
                             .strip().splitlines()[-1])  # fmt: skip
    status = json.loads(Path(info["dir"], "status.json").read_text())
    recipe = {c["field"]: c["value"] for c in info.get("recipe", [])}
    return {"dataset": ds.name, "run": info["id"], "train_s": train_s, "eval_s": eval_s,
            "steps": status.get("step"), "best_step": status.get("best_step"),
            "recipe": recipe, "summary": summary, "val_summary": val_summary}  # fmt: skip


def judge(ds: Dataset, result: dict[str, Any]) -> list[str]:
    """What falls short of the dataset's targets (empty: all met)."""
    summary = result["summary"]
    tuned = summary["systems"]["tuned"]
    misses = []
    if ds.min_primary is not None and (tuned["primary"] or 0) < ds.min_primary:
        misses.append(f"{summary['primary']['name']} {tuned['primary']:.2f} < {ds.min_primary}")
    valid = tuned.get("json_valid")
    if ds.min_valid_json is not None and (valid is None or valid < ds.min_valid_json):
        misses.append(f"valid JSON {valid} < {ds.min_valid_json}")
    if ds.train_limit_s is not None and result["train_s"] > ds.train_limit_s:
        misses.append(f"training took {result['train_s']:.0f} s > {ds.train_limit_s:.0f} s")
    few = _comparison(summary, "base_few")
    if ds.must_beat_few_shot and not (few and few["significant"] and few["wins"] > few["losses"]):
        misses.append("fine-tuned does not beat few-shot base significantly")
    return misses


def _comparison(summary: dict[str, Any], base: str) -> dict[str, Any] | None:
    return next((c for c in summary.get("comparisons", [])
                 if c["system"] == "tuned" and c["against"] == base), None)  # fmt: skip


def _with_ci(stats: dict[str, Any]) -> str:
    ci = stats.get("primary_ci") or {}
    mean = stats.get("primary")
    if mean is None:
        return "-"
    if ci.get("low") is None:
        return f"{mean:.2f}"
    return f"{mean:.2f} [{ci['low']:.2f}, {ci['high']:.2f}]"


def table(results: list[dict[str, Any]]) -> str:
    """The outcome table, Markdown."""
    head = ("| dataset | scored on | primary metric | fine-tuned [95 % CI] | few-shot base "
            "[95 % CI] | zero-shot base | wins / losses vs few-shot, p | valid JSON tuned / "
            "few-shot | steps (best) | train s | test eval s |")  # fmt: skip
    lines = [head, "|" + "---|" * 11]
    for r in results:
        for s, where in ((r["summary"], "test file"), (r.get("val_summary"), "validation split")):
            if s is not None:
                lines.append(_line(r, s, where))
    return "\n".join(lines)


def _line(r: dict[str, Any], s: dict[str, Any], where: str) -> str:
    """One row of the outcome table: one dataset scored on one set."""
    systems = s["systems"]
    tuned, few = systems["tuned"], systems.get("base_few", {})
    zero = systems.get("base_zero", {})
    test = _comparison(s, "base_few") or {}
    p = f"{test['p_value']:.2g}" if test.get("p_value") is not None else "-"
    valid = "/".join("-" if x.get("json_valid") is None else f"{x['json_valid']:.2f}"
                     for x in (tuned, few))  # fmt: skip
    return (
        f"| {r['dataset']} | {where}, {tuned.get('n')} | {s['primary']['name']} "
        f"| {_with_ci(tuned)} | {_with_ci(few)} | {_with_ci(zero)} | {test.get('wins', '-')} / "
        f"{test.get('losses', '-')}, p {p} | {valid} | {r['steps']} ({r['best_step']}) "
        f"| {r['train_s']:.0f} | {r['eval_s']:.0f} |"
    )


def rows(results: list[dict[str, Any]], misses: dict[str, list[str]], quick: bool) -> list[Row]:
    """One `make bench` row per dataset: fine-tuned against few-shot base."""
    out = []
    for r in results:
        s = r["summary"]
        tuned, few = s["systems"]["tuned"], s["systems"].get("base_few", {})
        ratio = (tuned["primary"] / few["primary"]) if few.get("primary") else None
        target = "see bench/outcome.py"
        out.append(Row(f"outcome: {r['dataset']} ({s['primary']['name']})", _with_ci(tuned),
                       "few-shot base", _with_ci(few), ratio, target,
                       None if quick else not misses[r["dataset"]]))  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help=f"comma-separated, from {','.join(DATASETS)}")
    parser.add_argument("--quick", action="store_true", help="a smoke test (2 steps, 4 examples)")
    parser.add_argument("--json", help="write the make-bench rows here")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(DATASETS)
    env = bench_env(Path(tempfile.mkdtemp(prefix="tunedeck-outcome-")))
    results, misses = [], {}
    for name in names:
        ds = DATASETS[name]
        print(f"== {ds.name}: default flow", file=sys.stderr, flush=True)
        result = run_one(ds, env, args.quick)
        results.append(result)
        misses[ds.name] = [] if args.quick else judge(ds, result)
        print(f"recipe: {result['recipe']}", file=sys.stderr)
        print(f"verdict: {result['summary'].get('verdict')}", file=sys.stderr, flush=True)
    print(table(results))
    for name, missed in misses.items():
        print(f"{name}: {'targets met' if not missed else 'BELOW TARGET: ' + '; '.join(missed)}")
    write_summary(args.json, "outcome", rows(results, misses, args.quick))
    return 1 if any(misses.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
