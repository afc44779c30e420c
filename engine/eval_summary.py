"""From stored rows to `eval/summary.json`: aggregates per system, comparisons, verdict.

"Beats" is decided per example on the primary score (label correct, JSON keys matched,
or ROUGE-L; see engine.eval_metrics): a win is a strictly higher score, equal scores are
ties and counted as such. The fine-tuned model is compared with the *stronger* base
system (higher mean primary score), because fine-tuning has to beat the cheap
alternative, not the weakest one; the verdict says so in plain words, including when
it does not win.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from engine.eval_metrics import (
    METRICS_VERSION,
    ScoringContext,
    aggregate,
    perplexity,
    score_example,
    scoring_context,
)
from engine.eval_options import BASE_FEW, BASE_SYSTEMS, BASE_ZERO, TUNED, system_title
from engine.eval_store import SUMMARY_FILE, eval_dir, read_jsonl, system_file
from engine.events import write_json_atomic
from engine.formats import Example
from engine.memorisation import TrainAnswerIndex, memorisation_scores

_SHORT_TITLES = {BASE_ZERO: "zero-shot base", BASE_FEW: "few-shot base"}


# ---------------------------------------------------------------------------
# Scoring rows
# ---------------------------------------------------------------------------


def read_split(run_dir: Path, name: str) -> list[Example]:
    """A run's own copy of a split (`data/<name>.jsonl`); an empty file is no examples."""
    from engine.formats import load_examples

    path = run_dir / "data" / f"{name}.jsonl"
    if not path.is_file() or path.stat().st_size == 0:
        return []
    return load_examples(path).examples


def source_lines(run_dir: Path, val: list[Any]) -> list[int]:
    """Each validation example's line in the user's source file (from the split manifest)."""
    try:
        manifest = json.loads((run_dir / "data" / "manifest.json").read_text(encoding="utf-8"))
        lines = manifest.get("val_lines") or []
    except (OSError, ValueError):
        lines = []
    if len(lines) == len(val) and all(isinstance(n, int) for n in lines):
        return list(lines)
    return [example.line for example in val]


def build_scoring(
    train: Sequence[Example], references: Sequence[str]
) -> tuple[ScoringContext, TrainAnswerIndex]:
    """The label scheme / primary score and the training-answer index of a run."""
    ctx = scoring_context(references, (example.answer for example in train))
    index = TrainAnswerIndex([(example.line, example.answer) for example in train])
    return ctx, index


@lru_cache(maxsize=4)
def _run_scoring(run_dir: Path, stamp: float) -> tuple[ScoringContext, TrainAnswerIndex]:
    val = read_split(run_dir, "val")
    return build_scoring(read_split(run_dir, "train"), [e.answer for e in val])


def run_scoring(run_dir: Path) -> tuple[ScoringContext, TrainAnswerIndex]:
    """build_scoring for a run's frozen split (cached while the split files are unchanged)."""
    stamp = max((p.stat().st_mtime for p in (run_dir / "data").glob("*.jsonl")), default=0.0)
    return _run_scoring(run_dir, stamp)


def score_output(
    output: str, reference: str, ctx: ScoringContext, index: TrainAnswerIndex
) -> dict[str, Any]:
    """All per-example metrics of one answer, memorisation included."""
    scores = score_example(output, reference, ctx)
    scores.update(memorisation_scores(index, output, scores["rouge_l"]))
    return scores


def system_rows(run_dir: Path, system: str, limit: int | None = None) -> list[dict[str, Any]]:
    """A system's stored rows in example order, re-scored if scored by an older version.

    Args:
        limit: only examples with an index below it (the ones this evaluation covered).
    """
    rows = [
        row
        for row in read_jsonl(system_file(run_dir, system))
        if isinstance(row.get("index"), int) and (limit is None or row["index"] < limit)
    ]
    rows.sort(key=lambda r: r["index"])
    if any(r.get("metrics_version") != METRICS_VERSION for r in rows):
        ctx, index = run_scoring(run_dir)
        for row in rows:
            if row.get("metrics_version") != METRICS_VERSION:
                row["metrics"] = score_output(row["output"], row["reference"], ctx, index)
                row["metrics_version"] = METRICS_VERSION
    return rows


# ---------------------------------------------------------------------------
# Aggregates and comparisons
# ---------------------------------------------------------------------------


def system_stats(rows: Sequence[dict[str, Any]], loss: float | None) -> dict[str, Any]:
    """A system's aggregate metrics (JSON-ready), plus loss, memorisation, answer lengths."""
    scores = [row["metrics"] for row in rows]
    stats = asdict(aggregate(scores))
    judged = [s for s in scores if s.get("memorised") is not None]
    stats["memorisation_judged"] = len(judged)
    stats["memorised"] = (
        round(sum(bool(s["memorised"]) for s in judged) / len(judged), 6) if judged else None
    )
    stats["val_loss"] = loss
    stats["perplexity"] = perplexity(loss)
    lengths = [row.get("output_tokens", 0) for row in rows]
    stats["mean_output_tokens"] = round(sum(lengths) / len(lengths), 2) if lengths else None
    stats["cut_at_limit"] = sum(not row.get("finished", True) for row in rows)
    return stats


def compare(rows: Sequence[dict[str, Any]], other: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Per-example wins / losses / ties of `rows` over `other` on the primary score."""
    theirs = {r["index"]: r["metrics"]["primary"] for r in other}
    wins = losses = ties = 0
    for row in rows:
        if row["index"] not in theirs:
            continue
        mine, their = row["metrics"]["primary"], theirs[row["index"]]
        if math.isclose(mine, their, abs_tol=1e-9):
            ties += 1
        elif mine > their:
            wins += 1
        else:
            losses += 1
    return {"wins": wins, "losses": losses, "ties": ties, "n": wins + losses + ties}


def stronger_base(stats: dict[str, dict[str, Any]]) -> str | None:
    """The base system with the higher mean primary score (few-shot on a tie)."""
    present = [s for s in (BASE_FEW, BASE_ZERO) if s in stats and stats[s]["primary"] is not None]
    return max(present, key=lambda s: stats[s]["primary"]) if present else None


def verdict(
    stats: dict[str, dict[str, Any]], comparison: dict[str, Any] | None, primary_name: str
) -> str:
    """The plain sentence at the top of the summary."""
    if comparison is None and TUNED in stats:
        return (
            f"fine-tuned {primary_name} {_fmt(stats[TUNED]['primary'])} "
            "(no base system evaluated to compare with)"
        )
    if comparison is None:
        bases = [
            f"{_SHORT_TITLES[s]} {primary_name} {_fmt(stats[s]['primary'])}"
            for s in BASE_SYSTEMS
            if s in stats
        ]
        return "baseline only (no fine-tuned model evaluated): " + ", ".join(bases)
    against, n = comparison["against"], comparison["n"]
    mine, theirs = stats[TUNED]["primary"], stats[against]["primary"]
    scores = f"{primary_name} {_fmt(mine)} vs {_fmt(theirs)}"
    title = _SHORT_TITLES[against]
    wins, losses, ties = comparison["wins"], comparison["losses"], comparison["ties"]
    if wins > losses:
        return (
            f"fine-tuned beats {title} on {wins}/{n} held-out examples "
            f"(worse on {losses}, tied on {ties}; {scores})"
        )
    if wins == losses:
        return (
            f"fine-tuned does not beat {title}: better on {wins}/{n}, worse on {losses}, "
            f"tied on {ties} ({scores})"
        )
    return (
        f"fine-tuned is worse than {title}: better on {wins}/{n}, worse on {losses}, "
        f"tied on {ties} ({scores})"
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def build_summary(
    run_dir: Path,
    systems: Sequence[str],
    ctx: ScoringContext,
    losses: dict[str, float | None],
    limit: int | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Aggregates of `systems`, comparisons with the bases, and the verdict.

    Args:
        losses: validation loss per system (the base model's for both base systems).
        limit: only examples with an index below it, the same set for every system.
        extra: more top-level fields (settings, notes, probes, judge) stored as given.
    """
    rows = {system: system_rows(run_dir, system, limit) for system in systems}
    stats = {system: system_stats(rows[system], losses.get(system)) for system in systems}
    for system in systems:
        stats[system]["title"] = system_title(system)
    against = stronger_base(stats)
    comparisons = [
        {"system": system, "against": base, **compare(rows[system], rows[base])}
        for system in systems
        if system.startswith(TUNED)
        for base in BASE_SYSTEMS
        if base in rows
    ]
    main = next((c for c in comparisons if c["system"] == TUNED and c["against"] == against), None)
    return {
        "run": run_dir.name,
        "time": time.time(),
        "primary": {"kind": ctx.primary, "name": ctx.primary_name},
        "label_key": ctx.scheme.key if ctx.scheme is not None else None,
        "systems": stats,
        "comparisons": comparisons,
        "against": against if main else None,
        "verdict": verdict(stats, main, ctx.primary_name),
        **extra,
    }


def write_summary(run_dir: Path, summary: dict[str, Any]) -> Path:
    """Replace `eval/summary.json` atomically."""
    path = eval_dir(run_dir) / SUMMARY_FILE
    write_json_atomic(path, summary)
    return path


def load_summary(run_dir: Path) -> dict[str, Any] | None:
    """The last evaluation's summary, or None before the first one."""
    try:
        data = json.loads((run_dir / "eval" / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
