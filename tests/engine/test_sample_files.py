"""The bundled sample datasets: clean, in the documented shape, and held-out files that don't leak.

Two scenarios ship in sample_data/: support-ticket classification (support_tickets.jsonl)
and order-email extraction (order_emails.jsonl), each with a hand-written held-out test file
for `tunedeck eval RUN --data`. A test file is only a fair score if none of its examples
appears in the training file, exactly or as a near-duplicate; these tests hold that line.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from engine.data.formats import load_examples
from engine.data.labels import detect_labels
from engine.data.lint.linter import lint_file
from engine.data.minhash import BINS, estimate
from engine.data.near_duplicates import (
    THRESHOLD,
    example_signatures,
    near_duplicate_groups,
    normalise,
    prompt_text,
)
from tests.conftest import REPO_ROOT

SAMPLES = REPO_ROOT / "sample_data"
TICKETS = SAMPLES / "support_tickets.jsonl"
TICKETS_TEST = SAMPLES / "support_tickets_test.jsonl"
DEFECTS = SAMPLES / "support_tickets_defects.jsonl"
ORDERS = SAMPLES / "order_emails.jsonl"
ORDERS_TEST = SAMPLES / "order_emails_test.jsonl"
CLEAN = [TICKETS, TICKETS_TEST, ORDERS, ORDERS_TEST]
ORDER_KEYS = ["customer", "product", "quantity", "city"]


@pytest.mark.parametrize("path", CLEAN, ids=lambda p: p.name)
def test_clean_sample_files_lint_without_errors_or_warnings(path: Path) -> None:
    report = lint_file(path)
    problems = [f for f in report.findings if f.severity != "info"]
    assert problems == []
    assert report.count == sum(1 for line in path.open(encoding="utf-8") if line.strip())


@pytest.mark.parametrize(
    ("train", "held_out"),
    [(TICKETS, TICKETS_TEST), (DEFECTS, TICKETS_TEST), (ORDERS, ORDERS_TEST)],
    ids=lambda p: p.name,
)
def test_held_out_files_share_nothing_with_the_training_file(train: Path, held_out: Path) -> None:
    seen = load_examples(train).examples
    test = load_examples(held_out).examples
    train_prompts = {normalise(prompt_text(e)) for e in seen}
    assert [e for e in test if normalise(prompt_text(e)) in train_prompts] == []
    signatures = example_signatures([*seen, *test])
    crossing = [
        group for group in near_duplicate_groups(signatures) if min(group) < len(seen) <= max(group)
    ]
    assert crossing == []
    # Stricter than lint: no test prompt may even resemble a training prompt.
    prompts = signatures.raw[:, :BINS]
    similar = estimate(prompts[: len(seen), None, :], prompts[None, len(seen) :, :])
    assert float(similar.max()) < THRESHOLD / 2


@pytest.mark.parametrize(("train", "held_out"), [(TICKETS, TICKETS_TEST), (ORDERS, ORDERS_TEST)])
def test_a_held_out_file_uses_its_training_files_system_prompt(train: Path, held_out: Path) -> None:
    systems = {
        e.messages[0].content for path in (train, held_out) for e in load_examples(path).examples
    }
    assert len(systems) == 1


def test_ticket_test_file_keeps_the_category_mix() -> None:
    answers = [json.loads(e.answer) for e in load_examples(TICKETS_TEST).examples]
    counts = Counter(a["category"] for a in answers)
    assert set(counts) == {"billing", "bug", "account", "feature_request", "how_to", "outage"}
    assert len(answers) >= 70 and max(counts.values()) - min(counts.values()) <= 2
    assert [list(a) for a in answers] == [["category", "reply"]] * len(answers)


@pytest.mark.parametrize("path", [ORDERS, ORDERS_TEST], ids=lambda p: p.name)
def test_order_answers_are_strict_json_drawn_from_the_email(path: Path) -> None:
    examples = load_examples(path).examples
    for example in examples:
        answer = json.loads(example.answer)
        assert example.answer == json.dumps(answer, ensure_ascii=False)  # compact, as dumped
        assert list(answer) == ORDER_KEYS
        assert isinstance(answer["quantity"], int) and answer["quantity"] >= 1
        email = prompt_text(example).lower()
        assert answer["city"].lower() in email, example.answer
        assert all(part.lower() in email for part in answer["customer"].split()), example.answer


@pytest.mark.parametrize("path", [ORDERS, ORDERS_TEST], ids=lambda p: p.name)
def test_no_order_field_looks_like_a_class_label(path: Path) -> None:
    answers = [e.answer for e in load_examples(path).examples]
    assert detect_labels(answers) is None
    values = {key: {json.loads(a)[key] for a in answers} for key in ORDER_KEYS}
    # More distinct values than labels.MAX_CLASSES or half the answers, whichever is smaller.
    assert all(len(v) > min(50, len(answers) // 2) for v in values.values()), {
        k: len(v) for k, v in values.items()
    }
