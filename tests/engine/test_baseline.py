"""The Baseline step's sentence: what the stronger base system's numbers say."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from engine.eval.baseline import BASELINE_OPTIONS, baseline_verdict, best_base
from engine.eval.options import BASE_SYSTEMS, EvalOptions


def summary(zero: float | None, few: float | None, json_valid: float | None = None) -> dict:
    systems: dict[str, Any] = {}
    for name, score in (("base_zero", zero), ("base_few", few)):
        if score is not None:
            systems[name] = {"primary": score, "json_valid": json_valid}
    return {"primary": {"name": "category accuracy"}, "systems": systems}


def test_the_sentence_names_the_stronger_base_and_its_numbers() -> None:
    text = baseline_verdict(summary(0.0, 1 / 6, json_valid=1 / 3))
    assert text == (
        "Few-shot base: 33 % valid JSON, category accuracy 0.17 — a prompt alone does not "
        "solve this; fine-tuning is worth trying."
    )


def test_the_advice_follows_the_score() -> None:
    assert "part of the way" in baseline_verdict(summary(0.7, 0.5))
    assert baseline_verdict(summary(0.7, 0.5)).startswith("Zero-shot base: category accuracy 0.70")
    assert "already does this well" in baseline_verdict(summary(0.2, 0.95))


def test_ties_prefer_few_shot_and_nothing_scored_says_so() -> None:
    assert best_base(summary(0.5, 0.5)) == "base_few"
    assert best_base(summary(None, None)) is None
    assert "says nothing yet" in baseline_verdict(summary(None, None))


def test_baseline_options_differ_from_the_full_evaluation_only_in_systems() -> None:
    # Same settings, so the evaluation after training reuses the baseline's rows.
    assert BASELINE_OPTIONS.systems == BASE_SYSTEMS
    assert replace(BASELINE_OPTIONS, systems=None) == EvalOptions()
