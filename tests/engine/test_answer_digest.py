"""Short cell texts of answers: labels with a right / wrong mark, differing JSON fields,
invalid JSON marked, free text unchanged; and the label key found from a stored row."""

from __future__ import annotations

import json

import pytest

from engine.eval.answer_digest import (
    ALL_MATCH,
    MAX_VALUE,
    NOT_JSON,
    SAME_JSON,
    answer_digest,
    label_key_of,
)
from engine.eval.memorisation import TrainAnswerIndex
from engine.eval.metrics import scoring_context
from engine.eval.summary import score_output

TICKET = '{"category": "%s", "reply": "%s"}'
CUT = '{"category": "billing", "reply": "cut sho'
ORDER = {"name": "Ann Lee", "product": "desk lamp", "quantity": 2, "city": "Paris"}


def order(**changes: object) -> str:
    fields = {**ORDER, **changes}
    return json.dumps({k: v for k, v in fields.items() if v is not None})


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (TICKET % ("billing", "We refund it."), "✓ billing"),
        (TICKET % ("how_to", "Open Settings."), "✗ how_to"),
        (TICKET % ("Billing", "Refund."), "✓ Billing"),  # the metrics ignore case too
        ('{"reply": "Hello"}', "✗ no category"),
        (CUT, f"{NOT_JSON} {CUT}"),  # cut off: invalid JSON, scored as no label
        ("I think this is a billing question.", f"{NOT_JSON} I think this is a billing question."),
        ("   ", f"{NOT_JSON} (empty)"),
    ],
)  # fmt: skip
def test_labelled_json_answers_show_their_label_marked_against_the_reference(
    output: str, expected: str
) -> None:
    assert answer_digest(output, TICKET % ("billing", "We will refund."), "category") == expected


def test_the_reference_column_shows_the_label_alone() -> None:
    assert answer_digest(TICKET % ("outage", "We are on it."), None, "category") == "outage"


def test_whole_answer_labels_ignore_case_and_a_full_stop() -> None:
    assert answer_digest("Positive.", "positive", "") == "✓ Positive."
    assert answer_digest("negative\n", "positive", "") == "✗ negative"
    assert answer_digest("", "positive", "") == "✗ no label"
    assert answer_digest("neutral", None, "") == "neutral"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (order(), ALL_MATCH),
        (order(name="ann   LEE"), ALL_MATCH),  # normalised text, as exact match scores it
        (order(quantity=3, city="Lyon"), "quantity=3 city=Lyon"),
        (order(quantity="2"), 'quantity="2"'),  # a string that reads as a number is quoted
        (order(city=None), "no city"),
        (order(note="gift"), "+note=gift"),
        (order(product="a lamp with a very long description"), 'product="a lamp with a very lon…'),
        (order(quantity=[1, 2]), "quantity=[1,2]"),
        ("Sure! Here is the order: Ann", f"{NOT_JSON} Sure! Here is the order: Ann"),
        ("[1, 2]", f"{NOT_JSON} [1, 2]"),
    ],
)
def test_extraction_answers_show_the_fields_that_differ(output: str, expected: str) -> None:
    digest = answer_digest(output, order())
    assert digest == expected


def test_a_long_value_is_cut_to_the_limit() -> None:
    digest = answer_digest(order(product="x" * 100), order())
    assert digest == "product=" + "x" * (MAX_VALUE - 1) + "…"


def test_an_extraction_reference_alone_reads_as_its_fields() -> None:
    assert (
        answer_digest(order(), None) == 'name="Ann Lee" product="desk lamp" quantity=2 city=Paris'
    )


def test_json_arrays_are_compared_as_values() -> None:
    assert answer_digest("[1, 2]", "[1,2]") == SAME_JSON
    assert answer_digest("[2, 1]", "[1,2]") == "[2, 1]"
    assert answer_digest("one, two", "[1,2]") == f"{NOT_JSON} one, two"


def test_free_text_keeps_its_words_on_one_line() -> None:
    text = "Thanks for writing!\n  We will   refund the charge."
    assert answer_digest(text, "We refund the duplicate charge.") == (
        "Thanks for writing! We will refund the charge."
    )
    assert answer_digest(text) == "Thanks for writing! We will refund the charge."
    # a JSON answer to a free-text reference is free text too
    assert answer_digest('{"a": 1}', "plain reference") == '{"a": 1}'


def test_the_not_json_text_is_cut() -> None:
    digest = answer_digest("word " * 100, order())
    assert digest.startswith(f"{NOT_JSON} word word") and len(digest) < 80


def test_label_key_is_found_from_the_scored_reference() -> None:
    assert label_key_of(TICKET % ("billing", "billing is fine"), "billing") == "category"
    assert label_key_of("positive", "positive") == ""
    assert label_key_of('{"tag": "a", "label": "a"}', "a") == "label"  # conventional name first
    assert label_key_of('{"n": 3}', "3") == "n"
    assert label_key_of(TICKET % ("billing", "x"), None) is None
    assert label_key_of("free text", "billing") is None


def test_the_digest_agrees_with_the_stored_scores() -> None:
    """A ✓ in a cell is a correct label in the metrics, a ✗ a wrong one."""
    references = [TICKET % (c, "x") for c in ("billing", "bug", "outage", "billing")]
    ctx = scoring_context(references, references * 3)
    outputs = [TICKET % ("billing", "y"), TICKET % ("outage", "y"), "no idea", "Billing"]
    for output, reference in zip(outputs, references, strict=True):
        scores = score_output(output, reference, ctx, TrainAnswerIndex([]))
        key = label_key_of(reference, scores["ref_label"])
        digest = answer_digest(output, reference, key)
        assert digest.startswith("✓") == bool(scores["label_correct"]), (output, digest)
