"""Fixtures shared by the engine tests."""

from __future__ import annotations

import json

import pytest

from engine.model.tokenization import tokenize_conversation
from tests.conftest import REPO_ROOT

SAMPLE = REPO_ROOT / "sample_data" / "support_tickets.jsonl"


@pytest.fixture(scope="module")
def batch(tiny_tokenizer) -> list[dict[str, list[int]]]:
    """The first four sample tickets tokenised with the tiny tokenizer: a micro-batch of
    varied lengths (so padding and packing differ)."""
    lines = SAMPLE.read_text().splitlines()[:4]
    items = []
    for line in lines:
        tokens = tokenize_conversation(tiny_tokenizer, json.loads(line)["messages"], 512)
        items.append({"input_ids": tokens.input_ids, "labels": tokens.labels})
    assert len({len(i["input_ids"]) for i in items}) > 1
    return items
