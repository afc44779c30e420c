"""Outputs of lint, split and evaluation scoring on fixed inputs, pinned across refactors.

- lint: the findings (severity, code, line, other lines) and the messages that carry
  numbers, on the planted-defects sample (sample_data/support_tickets_defects.md lists
  its ten defects) and on the clean ticket sample, with and without the tiny tokenizer.
- split: which source lines go to validation, label tallies, skipped lines and the
  sha256 of the written files, for the ticket sample (the split command's defaults,
  seed 0 and 10 %, and a run's default seed 42) and for the defects sample.
- evaluation: the summary of three systems' fixed answers to the first held-out
  tickets (label task) and order emails (JSON extraction): primary metric, mean, 95 %
  interval, sign-test wins / losses / p, and the verdict sentence.

No model runs here: only the tiny tokenizer, for lint's token counts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from engine.data.formats import load_examples
from engine.data.lint.linter import LintReport, lint_file
from engine.data.split import split_dataset
from engine.eval.metrics import METRICS_VERSION
from engine.eval.store import append_jsonl, system_file
from engine.eval.summary import build_scoring, build_summary, score_output
from tests.conftest import REPO_ROOT

SAMPLES = REPO_ROOT / "sample_data"
TICKETS = SAMPLES / "support_tickets.jsonl"
TICKETS_TEST = SAMPLES / "support_tickets_test.jsonl"
DEFECTS = SAMPLES / "support_tickets_defects.jsonl"
ORDERS = SAMPLES / "order_emails.jsonl"
ORDERS_TEST = SAMPLES / "order_emails_test.jsonl"

# ---------------------------------------------------------------------------
# lint
# ---------------------------------------------------------------------------

Row = tuple[str, str, int, tuple[int, ...]]


def findings(report: LintReport) -> list[Row]:
    """Each finding as (severity, code, line, other lines), in the report's order."""
    return [(f.severity, f.code, f.line, f.lines) for f in report.findings]


def messages(report: LintReport, codes: set[str]) -> dict[tuple[str, int], str]:
    return {(f.code, f.line): f.message for f in report.findings if f.code in codes}


DEFECT_FINDINGS: list[Row] = [
    ("warning", "too-few-examples", 0, ()),
    ("info", "label-distribution", 0, ()),
    ("info", "summary", 0, ()),
    ("info", "tokens-skipped", 0, ()),
    ("error", "invalid-json", 7, ()),
    ("error", "no-assistant", 9, ()),
    ("warning", "exact-duplicate", 12, (5,)),
    ("warning", "off-pattern-answer", 14, ()),
    ("warning", "contradiction", 16, (10,)),
    ("warning", "length-outlier", 18, ()),
    ("error", "unknown-role", 20, ()),
    ("error", "empty-content", 22, ()),
    ("warning", "off-pattern-system", 24, ()),
    ("warning", "unknown-label", 26, ()),
]
NUMBERED = {"summary", "label-distribution", "length-outlier", "off-pattern-answer",
            "token-lengths", "too-long"}  # fmt: skip
"""Codes whose message carries counts or sizes: their text is pinned too."""


def test_lint_finds_the_planted_defects() -> None:
    report = lint_file(DEFECTS)
    assert (report.format, report.count, report.exit_code) == ("chat", 26, 1)
    assert findings(report) == DEFECT_FINDINGS
    assert next(f.column for f in report.findings if f.code == "invalid-json") == 522
    stats = report.stats
    assert (stats.records, stats.examples, stats.skipped, stats.turns) == (30, 26, 4, {3: 26})
    assert messages(report, NUMBERED) == {
        ("label-distribution", 0): "labels (the JSON key 'category'): bug 6, how_to 5, "
        "account 4, billing 3, outage 3, feature_request 3, refund 1",
        ("summary", 0): "chat format (jsonl): 30 records, 26 usable, 4 skipped (errors); "
        "3 messages: 26",
        ("off-pattern-answer", 14): "answer is not JSON, but 25 of 26 answers are",
        ("length-outlier", 18): "answer is 10,812 characters, far longer than most "
        "(169-217 for the middle half)",
    }


def test_lint_with_the_tiny_tokenizer_counts_tokens(tiny_tokenizer) -> None:
    report = lint_file(DEFECTS, tokenizer=tiny_tokenizer, max_seq_len=1024)
    # The same findings, with token lengths in place of tokens-skipped, and line 18 too long.
    expected = DEFECT_FINDINGS[:3] + [("info", "token-lengths", 0, ())] + DEFECT_FINDINGS[4:10]
    expected += [("warning", "too-long", 18, ())] + DEFECT_FINDINGS[10:]
    assert findings(report) == expected
    tokens = report.stats.tokens
    assert tokens is not None
    assert (tokens.counted, tokens.exact, tokens.p50, tokens.p95, tokens.max, tokens.over) == (
        26, True, 324, 381, 7508, 1
    )  # fmt: skip
    assert messages(report, {"token-lengths", "too-long"}) == {
        ("token-lengths", 0): "tokens after the chat template: p50 324, p95 381, max 7,508; "
        "max_seq_len 1,024: 1 longer",
        ("too-long", 18): "7,508 tokens after the chat template, over max_seq_len 1,024: "
        "truncation would cut 6,482 of 7,306 assistant tokens",
    }


def test_lint_of_the_clean_sample_is_only_information(tiny_tokenizer) -> None:
    report = lint_file(TICKETS)
    assert (report.format, report.count, report.exit_code) == ("chat", 138, 0)
    assert findings(report) == [
        ("info", "label-distribution", 0, ()),
        ("info", "summary", 0, ()),
        ("info", "tokens-skipped", 0, ()),
    ]
    assert messages(report, NUMBERED) == {
        ("label-distribution", 0): "labels (the JSON key 'category'): how_to 23, bug 23, "
        "account 23, feature_request 23, billing 23, outage 23",
        ("summary", 0): "chat format (jsonl): 138 records, 138 usable; 3 messages: 138",
    }
    counted = lint_file(TICKETS, tokenizer=tiny_tokenizer, max_seq_len=1024)
    assert messages(counted, {"token-lengths"}) == {
        ("token-lengths", 0): "tokens after the chat template: p50 356, p95 413, max 484; "
        "max_seq_len 1,024: 0 longer"
    }


# ---------------------------------------------------------------------------
# split
# ---------------------------------------------------------------------------

TICKET_LABELS_TRAIN = {"how_to": 21, "bug": 21, "feature_request": 21, "outage": 21,
                       "account": 20, "billing": 20}  # fmt: skip


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_split_of_the_ticket_sample_with_the_split_commands_defaults(tmp_path: Path) -> None:
    result = split_dataset(TICKETS, tmp_path / "out")  # seed 0, 10 % held back
    assert (result.seed, result.val_fraction) == (0, 0.1)
    assert (result.train_count, result.val_count, result.label_key) == (124, 14, "category")
    assert result.val_lines == [4, 17, 20, 26, 28, 45, 59, 75, 85, 87, 90, 93, 110, 119]
    assert result.train_labels == TICKET_LABELS_TRAIN
    assert result.val_labels == {"account": 3, "billing": 3, "how_to": 2,
                                 "feature_request": 2, "bug": 2, "outage": 2}  # fmt: skip
    assert (result.groups, result.warnings, result.skipped_lines) == (0, [], [])
    assert result.leakage.is_clean
    assert sha256(tmp_path / "out" / "train.jsonl") == (
        "f41e7b2e12fabb1eff72b374b723b98288507eb7c6aa67726041d6c2db86ba05"
    )
    assert sha256(tmp_path / "out" / "val.jsonl") == (
        "0e989024bedcbdc3c4892a0cb9e57cd54ab4159111d5da8e53f86b92f3a80754"
    )


def test_split_of_the_ticket_sample_with_a_runs_default_seed(tmp_path: Path) -> None:
    result = split_dataset(TICKETS, tmp_path / "out", val_fraction=0.1, seed=42)
    assert (result.train_count, result.val_count) == (124, 14)
    assert result.val_lines == [10, 24, 51, 64, 67, 87, 96, 100, 107, 114, 130, 132, 135, 137]
    assert result.train_labels == TICKET_LABELS_TRAIN
    assert result.val_labels == {"account": 3, "billing": 3, "bug": 2, "how_to": 2,
                                 "outage": 2, "feature_request": 2}  # fmt: skip
    assert sha256(tmp_path / "out" / "val.jsonl") == (
        "0ef5c344199611c9a18ffd164f1de6be0246f4b8dc6be3d15b63f9fcf6fc4ce4"
    )


def test_split_of_the_defects_keeps_groups_together_and_skips_errors(tmp_path: Path) -> None:
    result = split_dataset(DEFECTS, tmp_path / "out")
    assert (result.train_count, result.val_count, result.groups) == (23, 3, 2)
    assert result.skipped_lines == [7, 9, 20, 22]
    assert result.val_lines == [15, 19, 29]
    assert result.val_labels == {"account": 1, "bug": 1, "how_to": 1}
    assert result.train_labels == {"bug": 5, "how_to": 4, "billing": 3, "outage": 3,
                                   "account": 3, "feature_request": 3, "(none)": 1,
                                   "refund": 1}  # fmt: skip
    assert [w.replace(str(DEFECTS), "<file>") for w in result.warnings] == [
        "only 3 validation examples: validation loss will be noisy",
        "4 lines of support_tickets_defects.jsonl left out because they have errors "
        "(run `tunedeck lint <file>`)",
    ]


# ---------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------

REPLY = "Thanks for writing in, we are looking into it."


def with_fields(answer: str, **changes: Any) -> str:
    return json.dumps({**json.loads(answer), **changes})


def ticket_answers(references: list[str]) -> dict[str, list[str]]:
    """Label task: fine-tuned wrong on every 8th ticket, few-shot right on every other,
    zero-shot mostly prose (no label)."""
    categories = [json.loads(r)["category"] for r in references]

    def wrong(category: str) -> str:
        return "bug" if category == "billing" else "billing"

    zero = [json.dumps({"category": "billing", "reply": REPLY}) if i % 3 == 0
            else f"I would file this under {c}" for i, c in enumerate(categories)]  # fmt: skip
    few = [json.dumps({"category": c if i % 2 == 0 else wrong(c), "reply": REPLY})
           for i, c in enumerate(categories)]  # fmt: skip
    tuned = [with_fields(r, category=wrong(c)) if i % 8 == 0 else r
             for i, (r, c) in enumerate(zip(references, categories, strict=True))]  # fmt: skip
    return {"base_zero": zero, "base_few": few, "tuned": tuned}


def order_answers(references: list[str]) -> dict[str, list[str]]:
    """JSON extraction: each system gets some fields wrong on a fixed pattern."""

    def changed(i: int, answer: str, system: str) -> str:
        order = json.loads(answer)
        if system == "tuned" and i % 4 == 1:
            order["quantity"] += 1
        if system == "tuned" and i % 5 == 2:
            order["city"] = "London"
        if system == "base_few" and i % 2 == 0:
            order["customer"] = ""
        if system == "base_few" and i % 3 == 0:
            order["city"] = "London"
        return json.dumps(order)

    zero = [r[: len(r) // 2] if i % 3 else r for i, r in enumerate(references)]  # cut: invalid
    few = [changed(i, r, "base_few") for i, r in enumerate(references)]
    tuned = [changed(i, r, "tuned") for i, r in enumerate(references)]
    return {"base_zero": zero, "base_few": few, "tuned": tuned}


def summarise(tmp_path: Path, train: Path, test: Path, n: int, answers: Any) -> dict[str, Any]:
    """Score each system's answers to the first `n` test examples as an evaluation stores
    them (eval/<system>.jsonl), then build the summary."""
    examples = load_examples(test).examples[:n]
    references = [e.answer for e in examples]
    ctx, index = build_scoring(load_examples(train).examples, references)
    run = tmp_path / "20250101-000000-c0ffee"
    run.mkdir()
    for system, outputs in answers(references).items():
        rows = [
            {"index": i, "line": examples[i].line, "system": system,
             "reference": references[i], "output": output, "metrics_version": METRICS_VERSION,
             "metrics": score_output(output, references[i], ctx, index)}
            for i, output in enumerate(outputs)
        ]  # fmt: skip
        append_jsonl(system_file(run, system), rows)
    return build_summary(run, ["base_zero", "base_few", "tuned"], ctx, {}, None, {})


def projection(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary's numbers that decide what a user is told."""
    return {
        "primary": summary["primary"],
        "label_key": summary["label_key"],
        "against": summary["against"],
        "systems": {
            name: (
                s["n"],
                s["primary"],
                s["primary_ci"],
                s["failures"],
                s["exact"],
                s["json_valid"],
            )
            for name, s in summary["systems"].items()
        },  # fmt: skip
        "comparisons": {
            c["against"]: (c["wins"], c["losses"], c["ties"], c["p_value"], c["significant"])
            for c in summary["comparisons"]
        },
        "secondary": [
            (s["metric"], s["mine"], s["theirs"], s["wins"], s["losses"], s["p_value"])
            for c in summary["comparisons"]
            for s in c.get("secondary", [])
        ],
    }


def wilson(low: float, high: float) -> dict[str, Any]:
    return {"low": low, "high": high, "method": "wilson"}


def bootstrap(low: float, high: float) -> dict[str, Any]:
    return {"low": low, "high": high, "method": "bootstrap"}


def test_eval_summary_of_a_label_task(tmp_path: Path) -> None:
    summary = summarise(tmp_path, TICKETS, TICKETS_TEST, 24, ticket_answers)
    assert projection(summary) == {
        "primary": {
            "kind": "label",
            "key": "category",
            "spec": "label:category",
            "name": "category accuracy",
            "source": "data",
            "why": "'category' takes one of 6 values named in the system prompt",
        },
        "label_key": "category",
        "against": "base_few",
        "systems": {
            "base_zero": (24, 0.041667, wilson(0.007393, 0.202418), 23, 0.0, 0.333333),
            "base_few": (24, 0.5, wilson(0.314274, 0.685726), 12, 0.0, 1.0),
            "tuned": (24, 0.875, wilson(0.689961, 0.956557), 3, 0.875, 1.0),
        },
        "comparisons": {
            "base_zero": (20, 0, 4, 2e-06, True),
            "base_few": (12, 3, 9, 0.035156, True),
        },
        "secondary": [
            ("exact", 0.875, 0.0, 21, 0, 1e-06),
            ("rouge_l", 0.996174, 0.194873, 24, 0, 0.0),
        ],
    }
    assert summary["verdict"] == (
        "fine-tuned beats few-shot base on category accuracy: 0.88 [0.69, 0.96] vs "
        "0.50 [0.31, 0.69], 12 wins / 3 losses, p = 0.035"
    )


def test_eval_summary_of_a_json_extraction_task(tmp_path: Path) -> None:
    summary = summarise(tmp_path, ORDERS, ORDERS_TEST, 20, order_answers)
    assert projection(summary) == {
        "primary": {
            "kind": "json_keys",
            "key": None,
            "spec": "fields",
            "name": "field accuracy",
            "source": "data",
            "why": "JSON answers whose values come from the prompt, not from a fixed set",
        },
        "label_key": None,
        "against": "base_few",
        "systems": {
            "base_zero": (20, 0.35, wilson(0.181192, 0.567146), 13, 0.35, 0.35),
            "base_few": (20, 0.7875, bootstrap(0.7125, 0.8625), 0, 0.35, 1.0),
            "tuned": (20, 0.8875, bootstrap(0.825, 0.95), 0, 0.6, 1.0),
        },
        "comparisons": {
            "base_zero": (13, 2, 5, 0.007385, True),
            "base_few": (11, 5, 4, 0.210114, False),
        },
        "secondary": [("exact", 0.6, 0.35, 10, 5, 0.301758)],
    }
    assert summary["systems"]["tuned"]["key_match"] == pytest.approx(
        {"customer": 1.0, "product": 1.0, "quantity": 0.75, "city": 0.8}
    )
    assert summary["verdict"] == (
        "too few examples to tell fine-tuned from few-shot base on field accuracy: "
        "0.89 [0.82, 0.95] vs 0.79 [0.71, 0.86], 11 wins / 5 losses, p = 0.21; but "
        "fine-tuned is clearly better on exact match: fine-tuned 0.60 vs 0.35 "
        "(10 wins / 5 losses, p = 0.30)"
    )
