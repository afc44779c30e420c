"""Advice for a validation set too small to tell models apart: the fraction that would be
enough (in the Split step's 0.05 steps, at most the recommended 0.2), else a test file."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.data.formats import load_examples
from engine.data.split import plan_split, val_target
from engine.data.split_advice import (
    MAX_SUGGESTED,
    MIN_VAL_EXAMPLES,
    TEST_FILE_HINT,
    ValidationAdvice,
    validation_advice,
)

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "support_tickets.jsonl"


def test_the_sample_split_gets_the_largest_share_and_a_test_file() -> None:
    examples = load_examples(SAMPLE).examples
    plan = plan_split(examples, 0.1, seed=0)
    assert (len(examples), len(plan.val)) == (138, 14)
    advice = validation_advice(len(examples), len(plan.val), 0.1)
    assert advice == ValidationAdvice(14, 0.2, 28)
    assert not advice.enough
    assert len(plan_split(examples, 0.2, seed=0).val) == 28  # what the advice promised
    assert advice.message == (
        "only 14 validation examples: too few to tell models apart; hold out 0.2 "
        "(28 examples, still under 30) and score a separate test file of 30+ examples "
        f"after training ({TEST_FILE_HINT})"
    )


@pytest.mark.parametrize(
    ("total", "val_count", "fraction", "suggested", "count"),
    [
        (250, 25, 0.1, 0.15, 38),  # the smallest step that reaches 30
        (400, 20, 0.05, 0.1, 40),
        (300, 27, 0.09, 0.1, 30),  # exactly 30 is enough
        (160, 16, 0.1, 0.2, 32),
        (149, 15, 0.1, MAX_SUGGESTED, 30),  # round(29.8): just enough at the cap
    ],
)
def test_the_smallest_step_that_gives_enough_is_suggested(
    total: int, val_count: int, fraction: float, suggested: float, count: int
) -> None:
    advice = validation_advice(total, val_count, fraction)
    assert advice == ValidationAdvice(val_count, suggested, count)
    assert advice.enough and count >= MIN_VAL_EXAMPLES
    assert f"hold out {suggested:g} ({count} examples), or score a separate test file" in (
        advice.message
    )


def test_enough_validation_examples_need_no_advice() -> None:
    assert validation_advice(300, 30, 0.1) is None
    assert validation_advice(10_000, 1_000, 0.1) is None


def test_no_validation_set_is_left_to_the_split_warning() -> None:
    assert validation_advice(100, 0, 0.0) is None


@pytest.mark.parametrize(
    ("total", "val_count", "fraction"), [(100, 20, 0.2), (100, 25, 0.25), (50, 25, 0.5)]
)
def test_a_share_already_at_the_cap_only_suggests_a_test_file(
    total: int, val_count: int, fraction: float
) -> None:
    advice = validation_advice(total, val_count, fraction)
    assert advice == ValidationAdvice(val_count, None, None)
    assert "hold out" not in advice.message and TEST_FILE_HINT in advice.message


def test_a_tiny_dataset_is_told_that_even_the_cap_is_not_enough() -> None:
    advice = validation_advice(40, 4, 0.1)
    assert advice == ValidationAdvice(4, 0.2, 8)
    assert "hold out 0.2 (8 examples, still under 30)" in advice.message


def test_a_small_validation_file_asks_for_more_examples_or_a_test_file() -> None:
    advice = validation_advice(148, 10, None)
    assert advice is not None and advice.from_file and advice.fraction is None
    assert "add examples to the validation file, or score a separate test file" in advice.message


def test_suggestions_never_exceed_the_cap_nor_go_down() -> None:
    for total in range(20, 400, 7):
        for step in range(1, 11):
            fraction = step / 20
            advice = validation_advice(total, val_target(total, fraction), fraction)
            if advice is None or advice.fraction is None:
                continue
            assert fraction < advice.fraction <= MAX_SUGGESTED
            assert advice.fraction_count == val_target(total, advice.fraction)
