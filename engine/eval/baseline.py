"""The baseline: what the base model does with a prompt alone, before any training.

The wizard's Baseline step evaluates the base systems (zero-shot and few-shot) on a run's
validation split before the run trains (engine.eval.launch with BASELINE_OPTIONS), and says
in one sentence whether a prompt already solves the task, from the numbers of the
stronger base system.
"""

from __future__ import annotations

from typing import Any

from engine.eval.options import BASE_SYSTEMS, EvalOptions

BASELINE_OPTIONS = EvalOptions(systems=BASE_SYSTEMS)
"""The baseline evaluation: both base systems, every other option at its default, so the
full evaluation after training reuses these rows (same settings fingerprint)."""
SOLVED = 0.9
"""Primary score (0..1) from which a prompt alone counts as solving the task."""
PARTLY = 0.6
"""Primary score from which a prompt gets a good part of the way."""
_TITLES = {"base_zero": "Zero-shot base", "base_few": "Few-shot base"}


def best_base(summary: dict[str, Any]) -> str | None:
    """The base system with the higher primary score (few-shot on a tie), or None."""
    stats = summary.get("systems") or {}
    scored = [s for s in ("base_few", "base_zero") if _primary(stats.get(s)) is not None]
    return max(scored, key=lambda s: _primary(stats[s]) or 0.0) if scored else None


def baseline_verdict(summary: dict[str, Any]) -> str:
    """One plain sentence on the base model's numbers, e.g.

    "Few-shot base: 33 % valid JSON, category accuracy 0.17 — a prompt alone does not
    solve this; fine-tuning is worth trying."
    """
    system = best_base(summary)
    if system is None:
        return "No base-model answers were scored: the baseline says nothing yet."
    stats = summary["systems"][system]
    name = (summary.get("primary") or {}).get("name") or "score"
    score = float(stats["primary"])
    figures = [f"{name} {score:.2f}"]
    if stats.get("json_valid") is not None:
        figures.insert(0, f"{round(stats['json_valid'] * 100)} % valid JSON")
    if score >= SOLVED:
        advice = (
            "a prompt alone already does this well; fine-tuning has little to add "
            "(train only if the evaluation must beat this)"
        )
    elif score >= PARTLY:
        advice = "a prompt gets part of the way; fine-tuning has to beat this to be worth it"
    else:
        advice = "a prompt alone does not solve this; fine-tuning is worth trying"
    return f"{_TITLES[system]}: {', '.join(figures)} — {advice}."


def _primary(stats: dict[str, Any] | None) -> float | None:
    value = (stats or {}).get("primary")
    return float(value) if isinstance(value, int | float) else None
