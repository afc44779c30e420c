"""Hyperparameter sweep on a sample dataset: where do the data-aware defaults sit?

Each point of the grid is one real run of the default model, started the way a user starts
one (`tunedeck train ... --follow`), then scored with `tunedeck eval RUN --systems tuned`
on held-out data (the run's validation split, or `--test FILE`). One table at the end:
learning rate, effective batch, epochs, optimizer steps, best step, best validation loss,
the primary metric, valid JSON and wall time. Also a point named `defaults`, with no
override at all, so the table shows the recipe beside its neighbours.

Slow by nature (minutes a point on a 2-core CPU): not part of `make bench`; its table is
recorded in bench/RESULTS.md.

Usage:
    python bench/sweep.py --data sample_data/support_tickets.jsonl \
        --lr 2e-4,1e-3 --batch 4,16 --epochs 3 [--point lr=3e-3,batch=4,epochs=3]
        [--test FILE] [--defaults] [--json OUT]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TUNEDECK = [sys.executable, "-m", "tui.cli"]


def run_cli(args: list[str], env: dict[str, str]) -> str:
    """Run a tunedeck subcommand; its stdout (stderr goes to ours for progress)."""
    done = subprocess.run(
        [*TUNEDECK, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"tunedeck {' '.join(args)} failed with exit {done.returncode}")
    return done.stdout


def train_and_eval(
    data: str, overrides: list[str], test: str | None, env: dict[str, str]
) -> dict[str, Any]:
    """One point: train with `overrides` (tunedeck train flags), then score it."""
    started = time.perf_counter()
    out = run_cli(["train", "--data", data, *overrides, "--json", "--follow"], env)
    train_s = time.perf_counter() - started
    info = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    run = info["id"]
    eval_args = ["eval", run, "--systems", "tuned", "--no-probes", "--json"]
    if test:
        eval_args += ["--data", test]
    summary = json.loads(run_cli(eval_args, env).strip().splitlines()[-1])
    return {"run": run, "train_s": train_s, **facts(Path(env["TUNEDECK_HOME"]), run, summary)}


def facts(home: Path, run: str, summary: dict[str, Any]) -> dict[str, Any]:
    """What the table shows of a finished run and its eval summary."""
    run_dir = home / "runs" / run
    status = json.loads((run_dir / "status.json").read_text())
    config = (run_dir / "config.toml").read_text()
    tuned = summary["systems"]["tuned"]
    return {
        "steps": status.get("step"),
        "best_val_loss": status.get("best_val_loss"),
        "best_step": status.get("best_step"),
        "primary_name": (summary.get("primary") or {}).get("name"),
        "exact": tuned.get("exact"),
        "primary": tuned.get("primary"),
        "valid_json": tuned.get("json_valid"),
        "n": tuned.get("n"),
        "config": {
            key: value
            for line in config.splitlines()
            if "=" in line and not line.startswith("#")
            for key, value in [map(str.strip, line.split("=", 1))]
            if key
            in (
                "learning_rate",
                "epochs",
                "micro_batch_size",
                "gradient_accumulation",
                "eval_steps",
            )
        },  # fmt: skip
    }


def grid(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(label, tunedeck train flags) for every point."""
    points: list[tuple[str, list[str]]] = []
    if args.defaults:
        points.append(("defaults", []))
    lrs = [float(x) for x in args.lr.split(",")] if args.lr else []
    batches = [int(x) for x in args.batch.split(",")] if args.batch else []
    epochs = [float(x) for x in args.epochs.split(",")] if args.epochs else []
    combos = list(itertools.product(lrs, batches, epochs))
    for point in args.point or []:
        values = dict(part.split("=") for part in point.split(","))
        combos.append((float(values["lr"]), int(values["batch"]), float(values["epochs"])))
    for lr, batch, ep in combos:
        micro = min(batch, 4)
        flags = ["--lr", f"{lr:g}", "--epochs", f"{ep:g}", "--set", f"micro_batch_size={micro}"]
        flags += ["--set", f"gradient_accumulation={batch // micro}"]
        points.append((f"lr={lr:g} batch={batch} epochs={ep:g}", flags))
    return points


def table(rows: list[dict[str, Any]]) -> str:
    """The sweep as a Markdown table."""
    head = "| point | steps | best step | best val loss | primary | valid JSON | n | train s |"
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        loss = f"{r['best_val_loss']:.3f}" if r.get("best_val_loss") is not None else "-"
        primary = f"{r['primary']:.2f}" if r.get("primary") is not None else "-"
        valid = f"{r['valid_json']:.2f}" if r.get("valid_json") is not None else "-"
        lines.append(
            f"| {r['label']} | {r['steps']} | {r.get('best_step') or '-'} | {loss} | {primary} "
            f"| {valid} | {r.get('n')} | {r['train_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--test", help="score this test file instead of the validation split")
    parser.add_argument("--lr", help="comma-separated learning rates")
    parser.add_argument("--batch", help="comma-separated effective batch sizes")
    parser.add_argument("--epochs", help="comma-separated epoch counts")
    parser.add_argument("--point", action="append", help="one point: lr=1e-3,batch=4,epochs=3")
    parser.add_argument("--defaults", action="store_true", help="also a point with no override")
    parser.add_argument(
        "--val-fraction", help="validation share of every run (default: tunedeck's)"
    )
    parser.add_argument("--json", help="write the rows here as JSON too")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="tunedeck-sweep-")
    # Share the converted default model with the user's home: conversion takes ~25 s.
    env = dict(os.environ, TUNEDECK_HOME=home, HF_HUB_OFFLINE="1")
    user_models = Path(os.environ.get("TUNEDECK_HOME", "")) / "models"
    if os.environ.get("TUNEDECK_HOME") and user_models.is_dir():
        os.symlink(user_models, Path(home) / "models")
    rows = []
    for label, flags in grid(args):
        print(f"== {label}", file=sys.stderr, flush=True)
        if args.val_fraction:
            flags = [*flags, "--val-fraction", args.val_fraction]
        rows.append({"label": label, **train_and_eval(args.data, flags, args.test, env)})
        print(table(rows[-1:]), file=sys.stderr, flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
