"""How lint scales: seconds and peak memory at 10k and 100k examples, against a naive peer.

Generates synthetic-but-varied chat JSONL (bench/synthetic_chat.py: ~1.1 KB a line, with
planted duplicates, near-duplicates and broken lines), then lints each file in a fresh
process (so peak RSS is that size's own) with token counting by the default model's
tokenizer (smollm2-135m; the tiny test tokenizer if the default model is unavailable).

The peer, measured in the same run on the same data, is what a user would script:
`datasets.load_dataset("json")` and `tokenizer.apply_chat_template` on every example,
counting examples over max_seq_len. It needs a clean file (it stops at the first broken
line), so it gets the same lines minus the broken ones; it checks nothing else.

Usage: python bench/lint_scale.py [--sizes 10000 100000] [--max-seq-len 1024] [--no-peer]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `python bench/lint_scale.py`


def _peak_rss_mb() -> float:
    """This process's peak resident memory since exec.

    /proc's VmHWM, not getrusage: ru_maxrss carries the parent's peak across fork+exec.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_lint(path: str, model: str, max_seq_len: int) -> dict:
    """Runs in a fresh process: load the tokenizer, lint, report time and peak memory."""
    from engine.data.lint.linter import lint_file
    from engine.model.resolve import load_tokenizer

    started = time.perf_counter()
    tokenizer = load_tokenizer(model)
    loaded = time.perf_counter()
    report = lint_file(path, tokenizer=tokenizer, max_seq_len=max_seq_len)
    done = time.perf_counter()
    tokens = report.stats.tokens
    return {
        "load_s": loaded - started,
        "seconds": done - loaded,
        "rss_mb": _peak_rss_mb(),
        "examples": report.count,
        "findings": len(report.findings),
        "too_long": tokens.over if tokens else None,
        "tokens_counted": tokens.counted if tokens else None,
        "p50": tokens.p50 if tokens else None,
    }


def child_peer(path: str, model: str, max_seq_len: int, cache: str) -> dict:
    """The naive script: load with datasets, apply the chat template to every example."""
    from datasets import load_dataset
    from datasets.utils.logging import disable_progress_bar

    from engine.model.resolve import load_tokenizer

    disable_progress_bar()
    tokenizer = load_tokenizer(model)
    started = time.perf_counter()
    dataset = load_dataset("json", data_files=path, split="train", cache_dir=cache)
    over = 0
    for row in dataset:
        ids = tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=False)
        over += len(ids) > max_seq_len
    return {"seconds": time.perf_counter() - started, "rss_mb": _peak_rss_mb(), "too_long": over}


def _run_child(*args: str) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=ROOT
    )
    if result.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def child_model(tmp: str) -> dict:
    """Runs in a child (converting a model costs ~1 GB the parent should not carry): the
    model argument for load_tokenizer and a description, the default model if possible."""
    from engine.model.resolve import DEFAULT_MODEL, resolve_model

    try:
        path = resolve_model(DEFAULT_MODEL)
        return {"model": DEFAULT_MODEL, "note": f"{DEFAULT_MODEL} (default model, {path})"}
    except Exception as exc:  # not installed / cannot convert: still measure something
        from tests.tiny_model import save_tiny_model

        note = f"NOTE: default model unavailable ({exc}); using the tiny test tokenizer"
        return {"model": str(save_tiny_model(Path(tmp) / "tiny_model")), "note": note}


def _clean_copy(path: Path, out: Path) -> int:
    """The file without lines that are not JSON, for the peer; returns lines dropped."""
    dropped = 0
    with open(path, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        for line in src:
            try:
                json.loads(line)
            except ValueError:
                dropped += 1
                continue
            dst.write(line)
    return dropped


def _measure(size: int, tmp: Path, model: str, max_seq_len: int, peer: bool) -> dict:
    """Generate one size, lint it (and run the peer) in fresh processes, print a row."""
    from bench.synthetic_chat import write_dataset

    path = write_dataset(tmp / f"chat_{size}.jsonl", size, seed=size)
    lint = _run_child("lint", str(path), model, str(max_seq_len))
    other = None
    row = (
        f"{size:>9,} {path.stat().st_size / 1e6:>8.1f} {lint['seconds']:>7.1f} "
        f"{lint['rss_mb']:>11.0f} {lint['too_long']:>8}"
    )
    if peer:
        clean = tmp / f"chat_{size}.clean.jsonl"
        _clean_copy(path, clean)
        other = _run_child("peer", str(clean), model, str(max_seq_len), str(tmp / "cache"))
        ratio = other["seconds"] / lint["seconds"]
        row += (
            f" | {other['seconds']:>7.1f} {other['rss_mb']:>11.0f} "
            f"{other['too_long']:>8} {ratio:>8.1f}x"
        )
    print(row, flush=True)
    print(
        f"{'':>9} lint: {lint['examples']:,} usable examples, {lint['findings']:,} findings, "
        f"tokens counted for {lint['tokens_counted']:,} (p50 {lint['p50']}), "
        f"tokenizer load {lint['load_s']:.1f} s (not in lint s)",
        flush=True,
    )
    return {"size": size, "lint": lint, "peer": other}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--max-seq-len", type=int, default=1024)
    parser.add_argument("--no-peer", action="store_true", help="skip the peer (it is slow)")
    parser.add_argument("--json", help="write the summary rows (bench/run_all.py) here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "model":
            print(json.dumps(child_model(rest[0])))
        else:
            fn = child_lint if kind == "lint" else child_peer
            print(json.dumps(fn(rest[0], rest[1], int(rest[2]), *rest[3:])))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="tunedeck-bench-") as tmp_name:
        tmp = Path(tmp_name)
        chosen = _run_child("model", str(tmp))
        print(f"tokenizer: {chosen['note']}")
        print(f"max_seq_len: {args.max_seq_len}; cores: {os.cpu_count()}")
        header = f"{'examples':>9} {'file MB':>8} {'lint s':>7} {'peak RSS MB':>11} {'too long':>8}"
        if not args.no_peer:
            header += f" | {'peer s':>7} {'peer RSS MB':>11} {'too long':>8} {'peer/lint':>9}"
        print(header)
        sizes = [_measure(size, tmp, chosen["model"], args.max_seq_len, not args.no_peer)
                 for size in args.sizes]  # fmt: skip
    write_lint_summary(args.json, sizes)


GOAL_S, GOAL_RSS_MB, GOAL_EXAMPLES = 20.0, 1500.0, 100_000
"""The issue's goal: 100k examples linted with token counts in ~20 s, peak RSS < 1.5 GB."""


def write_lint_summary(path: str | None, sizes: list[dict]) -> None:
    """The rows of `make bench`'s table (bench/run_all.py): each size, and the growth."""
    from bench.summary import Row, write_summary

    rows = []
    for measured in sizes:
        lint, peer, size = measured["lint"], measured["peer"], measured["size"]
        at_goal = size >= GOAL_EXAMPLES
        target = f"<= {GOAL_S:.0f} s, < {GOAL_RSS_MB / 1000:.1f} GB" if at_goal else "-"
        met = lint["seconds"] <= GOAL_S and lint["rss_mb"] < GOAL_RSS_MB if at_goal else None
        ratio = peer["seconds"] / lint["seconds"] if peer else None
        peer_s = f"{peer['seconds']:.1f} s" if peer else "-"
        rows.append(Row(f"lint {size:,} examples with token counts",
                        f"{lint['seconds']:.1f} s, {lint['rss_mb']:.0f} MB",
                        "datasets + apply_chat_template", peer_s, ratio, target, met))  # fmt: skip
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        growth = large["lint"]["seconds"] / small["lint"]["seconds"]
        scale = large["size"] / small["size"]
        rows.append(Row(f"lint time growth {small['size']:,} -> {large['size']:,}",
                        f"{growth:.1f}x", "examples", f"{scale:.0f}x", None,
                        f"linear (<= {scale:.0f}x)", growth <= scale * 1.15))  # fmt: skip
    write_summary(path, "lint_scale", rows)


if __name__ == "__main__":
    main()
