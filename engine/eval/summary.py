"""From stored rows to `eval/[<set>/]summary.json`: aggregates, comparisons, verdict.

"Beats" is decided per example on the primary score (label correct, field accuracy, or
ROUGE-L; see engine.eval.metrics): a win is a strictly higher score, equal scores are
ties. The fine-tuned model is compared with the *stronger* base system (higher mean
primary score), because fine-tuning has to beat the cheap alternative, not the weakest
one. Every system's mean primary score carries a 95 % interval, and the comparison an
exact sign test on wins vs losses (engine.eval.stats).

The verdict's rule: fine-tuned "beats" (or "is worse than") the base only when the
paired test gives p < 0.05; otherwise it says "too few examples to tell". It never calls
the two level on the primary score while another standard metric (exact match, valid
JSON, same keys, ROUGE-L) differs clearly (a significant paired test, or a gap of 0.2 or
more over at least six examples): it names that metric and the better system. It also
says which examples it scored: "validation split, 14 examples" or "test file x.jsonl,
70 examples".
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from engine.core.events import write_json_atomic
from engine.core.layout import DATA_DIR, SET_EXAMPLES, SUMMARY_FILE
from engine.data.formats import Example
from engine.data.labels import label_inputs
from engine.data.primary import Primary
from engine.eval.memorisation import TrainAnswerIndex, memorisation_scores
from engine.eval.metrics import (
    METRICS_VERSION,
    POOL,
    ScoringContext,
    aggregate,
    perplexity,
    score_example,
    scoring_context,
)
from engine.eval.options import BASE_FEW, BASE_SYSTEMS, BASE_ZERO, TUNED, system_title
from engine.eval.primary import primary_path, run_primary, stored_primary
from engine.eval.sets import load_eval_set, read_split, source_lines
from engine.eval.stats import (
    PairedTest,
    clear_difference,
    format_p,
    mean_interval,
    paired_test,
)
from engine.eval.store import VALIDATION, read_jsonl, set_dir, set_path, system_file

__all__ = ["read_split", "source_lines"]  # re-exported: the eval runner reads splits here

_SHORT_TITLES = {BASE_ZERO: "zero-shot base", BASE_FEW: "few-shot base", TUNED: "fine-tuned"}
SECONDARY = (("exact", "exact match"), ("json_valid", "valid JSON"),
             ("same_keys", "same keys"), ("rouge_l", "ROUGE-L"))  # fmt: skip
"""Standard metrics the verdict checks beside the primary score (per-example values)."""


# ---------------------------------------------------------------------------
# Scoring rows
# ---------------------------------------------------------------------------


def build_scoring(
    train: Sequence[Example], references: Sequence[str], primary: Primary | None = None
) -> tuple[ScoringContext, TrainAnswerIndex]:
    """The label scheme / primary score and the training-answer index of a run.

    Args:
        primary: the run's primary metric (engine.eval.primary.run_primary); None: decided
            from the training examples (from the references when there are none).
    """
    ctx = scoring_context(references, *label_inputs(train), primary=primary)
    index = TrainAnswerIndex([(example.line, example.answer) for example in train])
    return ctx, index


@lru_cache(maxsize=8)
def _run_scoring(
    run_dir: Path, eval_set: str, stamp: float
) -> tuple[ScoringContext, TrainAnswerIndex]:
    examples = load_eval_set(run_dir, eval_set).examples
    references = [e.answer for e in examples]
    return build_scoring(read_split(run_dir, "train"), references, run_primary(run_dir))


def run_scoring(
    run_dir: Path, eval_set: str = VALIDATION
) -> tuple[ScoringContext, TrainAnswerIndex]:
    """build_scoring for a run's frozen split and eval set (cached while they are unchanged)."""
    files = [
        *(run_dir / DATA_DIR).glob("*.jsonl"),
        set_path(run_dir, eval_set) / SET_EXAMPLES,
        primary_path(run_dir),
    ]
    stamp = max((p.stat().st_mtime for p in files if p.is_file()), default=0.0)
    return _run_scoring(run_dir, eval_set, stamp)


def score_output(
    output: str, reference: str, ctx: ScoringContext, index: TrainAnswerIndex
) -> dict[str, Any]:
    """All per-example metrics of one answer, memorisation included.

    Think blocks (Qwen3-style reasoning) are removed from both first: the answer is scored.
    """
    from engine.model.tokenization import strip_thinking

    output, reference = strip_thinking(output), strip_thinking(reference)
    scores = score_example(output, reference, ctx)
    scores.update(memorisation_scores(index, output, scores["rouge_l"]))
    return scores


def system_rows(
    run_dir: Path, system: str, limit: int | None = None, eval_set: str = VALIDATION
) -> list[dict[str, Any]]:
    """A system's stored rows in example order, re-scored if scored by an older version or
    under another primary metric than the run's (a user chose one since).

    Args:
        limit: only examples with an index below it (the ones this evaluation covered).
    """
    rows = [
        row
        for row in read_jsonl(system_file(run_dir, system, eval_set))
        if isinstance(row.get("index"), int) and (limit is None or row["index"] < limit)
    ]
    rows.sort(key=lambda r: r["index"])
    stored = stored_primary(run_dir)
    spec = stored.spec if stored is not None else None
    stale = [
        row
        for row in rows
        if row.get("scored_as") != POOL
        and (
            row.get("metrics_version") != METRICS_VERSION
            or (spec is not None and row.get("scored_as", spec) != spec)
        )
    ]
    if stale:
        ctx, index = run_scoring(run_dir, eval_set)
        for row in stale:
            row["metrics"] = score_output(row["output"], row["reference"], ctx, index)
            row["metrics_version"] = METRICS_VERSION
            row["scored_as"] = ctx.spec
    return rows


# ---------------------------------------------------------------------------
# Aggregates and comparisons
# ---------------------------------------------------------------------------


def system_stats(rows: Sequence[dict[str, Any]], loss: float | None) -> dict[str, Any]:
    """A system's aggregate metrics (JSON-ready), the primary score's 95 % interval, loss,
    memorisation and answer lengths."""
    scores = [row["metrics"] for row in rows]
    stats = asdict(aggregate(scores))
    interval = mean_interval([float(s["primary"]) for s in scores])
    stats["primary_ci"] = asdict(interval) if interval is not None else None
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


def _paired(
    rows: Sequence[dict[str, Any]], other: Sequence[dict[str, Any]], metric: str
) -> tuple[list[float], list[float]]:
    """Per-example values of one metric on the examples both systems answered and scored."""
    theirs = {r["index"]: r["metrics"].get(metric) for r in other}
    mine_values, their_values = [], []
    for row in rows:
        a, b = row["metrics"].get(metric), theirs.get(row["index"])
        if isinstance(a, int | float) and isinstance(b, int | float):
            mine_values.append(float(a))
            their_values.append(float(b))
    return mine_values, their_values


def _test_fields(test: PairedTest) -> dict[str, Any]:
    return {"wins": test.wins, "losses": test.losses, "ties": test.ties, "n": test.n,
            "p_value": round(test.p_value, 6), "significant": test.significant}  # fmt: skip


def compare(rows: Sequence[dict[str, Any]], other: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-example wins / losses / ties of `rows` over `other` on the primary score, and
    the exact sign test's two-sided p-value."""
    return _test_fields(paired_test(*_paired(rows, other, "primary")))


def secondary_differences(
    rows: Sequence[dict[str, Any]], other: Sequence[dict[str, Any]], primary_kind: str
) -> list[dict[str, Any]]:
    """The standard metrics (SECONDARY) on which `rows` and `other` differ clearly."""
    found = []
    for metric, name in SECONDARY:
        if metric == primary_kind:
            continue
        mine, theirs = _paired(rows, other, metric)
        if not mine:
            continue
        test = paired_test(mine, theirs)
        mean_mine, mean_theirs = sum(mine) / len(mine), sum(theirs) / len(theirs)
        if clear_difference(test, mean_mine, mean_theirs):
            found.append({"metric": metric, "name": name, "mine": round(mean_mine, 6),
                          "theirs": round(mean_theirs, 6), **_test_fields(test)})  # fmt: skip
    return found


def stronger_base(stats: dict[str, dict[str, Any]]) -> str | None:
    """The base system with the higher mean primary score (few-shot on a tie)."""
    present = [s for s in (BASE_FEW, BASE_ZERO) if s in stats and stats[s]["primary"] is not None]
    return max(present, key=lambda s: stats[s]["primary"]) if present else None


# ---------------------------------------------------------------------------
# The verdict
# ---------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def with_interval(stats: dict[str, Any]) -> str:
    """`0.93 [0.81, 0.98]`: a system's mean primary score and its 95 % interval."""
    ci = stats.get("primary_ci")
    text = _fmt(stats.get("primary"))
    return f"{text} [{ci['low']:.2f}, {ci['high']:.2f}]" if ci else text


def _counts(test: dict[str, Any]) -> str:
    win = "win" if test["wins"] == 1 else "wins"
    loss = "loss" if test["losses"] == 1 else "losses"
    return f"{test['wins']} {win} / {test['losses']} {loss}, {format_p(test['p_value'])}"


def _secondary_clause(item: dict[str, Any], against: str) -> str:
    """`few-shot base is clearly better on exact match: 0.50 vs 0.25 (1 win / 5 losses, …)`."""
    better = TUNED if item["mine"] > item["theirs"] else against
    return (
        f"{_SHORT_TITLES[better]} is clearly better on {item['name']}: fine-tuned "
        f"{_fmt(item['mine'])} vs {_fmt(item['theirs'])} ({_counts(item)})"
    )


def verdict(
    stats: dict[str, dict[str, Any]],
    comparison: dict[str, Any] | None,
    primary_name: str,
    scored: str = "",
) -> str:
    """The plain sentence at the top of the summary.

    Args:
        comparison: fine-tuned vs the stronger base (compare's fields, `against`, and
            `secondary`: secondary_differences), None when either side is missing.
        scored: what was scored, e.g. "validation split, 14 examples".
    """
    where = f" ({scored})" if scored else ""
    if comparison is None and TUNED in stats:
        return (
            f"fine-tuned {primary_name} {with_interval(stats[TUNED])} "
            f"(no base system evaluated to compare with){where}"
        )
    if comparison is None:
        bases = [
            f"{_SHORT_TITLES[s]} {primary_name} {with_interval(stats[s])}"
            for s in BASE_SYSTEMS
            if s in stats
        ]
        return "baseline only (no fine-tuned model evaluated): " + ", ".join(bases) + where
    against = comparison["against"]
    title = _SHORT_TITLES[against]
    scores = f"{with_interval(stats[TUNED])} vs {with_interval(stats[against])}"
    figures = f"{scores}, {_counts(comparison)}"
    wins, losses = comparison["wins"], comparison["losses"]
    if comparison["significant"]:
        better = wins > losses
        head = f"fine-tuned {'beats' if better else 'is worse than'} {title} on {primary_name}"
        others = [s for s in comparison.get("secondary", []) if (s["mine"] > s["theirs"]) != better]
    elif wins == losses == 0:
        head = f"fine-tuned and {title} score the same on every example's {primary_name}"
        others = comparison.get("secondary", [])
    else:
        head = f"too few examples to tell fine-tuned from {title} on {primary_name}"
        others = comparison.get("secondary", [])
    text = f"{head}: {figures}"
    if others:
        text += "; but " + "; ".join(_secondary_clause(s, against) for s in others)
    return text + where


# ---------------------------------------------------------------------------
# The summary file
# ---------------------------------------------------------------------------


def build_summary(
    run_dir: Path,
    systems: Sequence[str],
    ctx: ScoringContext,
    losses: dict[str, float | None],
    limit: int | None,
    extra: dict[str, Any],
    eval_set: str = VALIDATION,
    rows: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Aggregates of `systems`, comparisons with the bases, and the verdict.

    Args:
        losses: loss on the set's examples per system (the base model's for both bases).
        limit: only examples with an index below it, the same set for every system.
        extra: more top-level fields (settings, notes, probes, judge, `eval_set`: the
            set's to_json) stored as given; `eval_set`'s description goes in the verdict.
        rows: each system's rows, already scored by `ctx` (None: the stored rows).
    """
    if rows is None:
        rows = {system: system_rows(run_dir, system, limit, eval_set) for system in systems}
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
    if main is not None and against is not None:
        main["secondary"] = secondary_differences(rows[TUNED], rows[against], ctx.primary)
    scored = (extra.get("eval_set") or {}).get("description", "")
    return {
        "run": run_dir.name,
        "time": time.time(),
        "primary": primary_json(ctx),
        "label_key": ctx.scheme.key if ctx.scheme is not None else None,
        "systems": stats,
        "comparisons": comparisons,
        "against": against if main else None,
        "verdict": verdict(stats, main, ctx.primary_name, scored),
        **extra,
    }


def primary_json(ctx: ScoringContext) -> dict[str, Any]:
    """The summary's `primary`: kind, name, and (where known) spelling, reason, source."""
    if ctx.choice is None:
        return {"kind": ctx.primary, "name": ctx.primary_name}
    return {**ctx.choice.to_json(), "kind": ctx.primary, "name": ctx.primary_name}


def primary_reason(summary: dict[str, Any]) -> str:
    """`category accuracy: the JSON key 'category' takes one of 6 values that the system
    prompt names`: the primary metric and why ("" for a summary that does not say)."""
    primary = summary.get("primary") or {}
    name, why = primary.get("name"), primary.get("why")
    return f"{name}: {why}" if name and why else ""


def write_summary(run_dir: Path, summary: dict[str, Any], eval_set: str = VALIDATION) -> Path:
    """Replace the set's `summary.json` atomically."""
    path = set_dir(run_dir, eval_set) / SUMMARY_FILE
    write_json_atomic(path, summary)
    return path


def load_summary(run_dir: Path, eval_set: str = VALIDATION) -> dict[str, Any] | None:
    """The set's last evaluation summary, or None before the first one."""
    try:
        data = json.loads((set_path(run_dir, eval_set) / SUMMARY_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
