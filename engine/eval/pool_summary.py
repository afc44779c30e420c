"""The summary of a prompt pool: what was answered, no score, review decides.

A pool's prompts have no reference answers (engine.data.pool), so nothing is scored: the
summary says how many answers each system gave, how many are valid JSON where the training
answers are JSON, and how long they are, with a verdict that hands over to the review.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.eval.metrics import ScoringContext
from engine.eval.options import TUNED, system_title
from engine.eval.summary import primary_json, system_rows

NO_REFERENCES = "no references: review to score"
"""The verdict of a prompt pool, whose answers have nothing to be scored against."""


def pool_summary(
    run_dir: Path,
    systems: Sequence[str],
    ctx: ScoringContext,
    losses: dict[str, float | None],
    limit: int | None,
    extra: dict[str, Any],
    eval_set: str,
) -> dict[str, Any]:
    """A prompt pool's summary: what was answered (valid JSON where the task is JSON,
    answer lengths), no score, and a verdict that says review decides.

    The same arguments as engine.eval.summary.build_summary (`losses` unused: a pool has
    no answers to take a loss on)."""
    stats: dict[str, dict[str, Any]] = {}
    for system in systems:
        rows = system_rows(run_dir, system, limit, eval_set)
        valid = [float(r["metrics"]["json_valid"]) for r in rows if "json_valid" in r["metrics"]]
        lengths = [r.get("output_tokens", 0) for r in rows]
        stats[system] = {
            "title": system_title(system),
            "n": len(rows),
            "primary": None,
            "primary_ci": None,
            "json_valid": round(sum(valid) / len(valid), 6) if valid else None,
            "failures": sum(bool(r["metrics"].get("failed")) for r in rows),
            "mean_output_tokens": round(sum(lengths) / len(lengths), 2) if lengths else None,
            "cut_at_limit": sum(not r.get("finished", True) for r in rows),
        }
    answered = stats.get(TUNED, next(iter(stats.values()), {"n": 0}))["n"]
    scored = (extra.get("eval_set") or {}).get("description", "")
    verdict = (
        f"{NO_REFERENCES}: accept the right answers and correct the others ({answered} "
        "answered); `tunedeck data add` turns them into training examples"
    )
    return {
        "run": run_dir.name,
        "time": time.time(),
        "pool": True,
        "primary": primary_json(ctx),
        "label_key": None,
        "systems": stats,
        "comparisons": [],
        "against": None,
        "verdict": verdict + (f" ({scored})" if scored else ""),
        **extra,
    }
