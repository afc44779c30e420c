"""Review of an evaluation: table rows, marks that survive a reload, filters, sorting,
blind A/B win rate, and CSV / JSONL export."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from engine.eval.memorisation import TrainAnswerIndex
from engine.eval.metrics import METRICS_VERSION, scoring_context
from engine.eval.review import (
    AbPair,
    ab_pair,
    ab_queue,
    ab_stats,
    export_review,
    filter_rows,
    load_marks,
    load_table,
    record_preference,
    review_summary,
    set_mark,
    sort_rows,
    word_diff,
)
from engine.eval.store import append_jsonl, system_file
from engine.eval.summary import build_summary, score_output, write_summary

TICKET = '{"category": "%s", "reply": "%s"}'
PROMPTS = [
    "I was charged twice for March, please fix my invoice.",
    "The export button crashes the app every time I press it on my Android phone.",
    "Nothing loads since this morning, is the service down?",
    "Can I get a receipt for my last payment?",
]
REFERENCES = [
    TICKET % ("billing", "We will refund the duplicate charge."),
    TICKET % ("bug", "Thanks, please send the crash log."),
    TICKET % ("outage", "We are on it; see the status page."),
    TICKET % ("billing", "Receipts are under Settings > Billing."),
]
OUTPUTS = {
    # ex0: few and tuned right; ex1: only zero-shot right (a regression of tuned);
    # ex2: nobody right, tuned not even JSON; ex3: only tuned right.
    "base_zero": [
        "It sounds like billing.",
        TICKET % ("bug", "Send the log."),
        "Try again later.",
        "Receipts are available.",
    ],
    "base_few": [
        TICKET % ("billing", "Refund coming."),
        TICKET % ("account", "Check your login."),
        TICKET % ("bug", "Please retry."),
        TICKET % ("how_to", "Look in settings."),
    ],
    "tuned": [
        TICKET % ("billing", "We will refund the duplicate charge."),
        TICKET % ("outage", "We are looking into it."),
        "I do not know.",
        TICKET % ("billing", "Receipts are under Settings > Billing."),
    ],
}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run directory with stored eval rows for three systems and a summary."""
    run = tmp_path / "run"
    run.mkdir()
    labels = [TICKET % (c, "x") for c in ("billing", "bug", "outage") * 4]
    ctx = scoring_context(REFERENCES, labels)
    index = TrainAnswerIndex([])
    for system, outputs in OUTPUTS.items():
        rows = [
            {
                "index": i,
                "line": 100 + i,
                "system": system,
                "prompt": PROMPTS[i],
                "messages": [{"role": "user", "content": PROMPTS[i]}],
                "reference": REFERENCES[i],
                "output": output,
                "metrics_version": METRICS_VERSION,
                "metrics": score_output(output, REFERENCES[i], ctx, index),
            }
            for i, output in enumerate(outputs)
        ]
        append_jsonl(system_file(run, system), rows)
    summary = build_summary(run, list(OUTPUTS), ctx, {}, None, {"examples": 4})
    write_summary(run, summary)
    return run


def test_table_rows_carry_every_answer_and_score(run_dir: Path) -> None:
    table = load_table(run_dir)
    assert table.systems == ["base_zero", "base_few", "tuned"]
    assert table.primary_name == "category accuracy"
    assert table.against == "base_few"  # ties on mean primary (0.25 each) go to few-shot
    assert [r.index for r in table.rows] == [0, 1, 2, 3]
    first = table.rows[0]
    assert first.line == 100 and first.prompt == PROMPTS[0]
    assert first.prompt_short == PROMPTS[0]  # short enough to show whole
    assert table.rows[1].prompt_short == PROMPTS[1][:59] + "…"
    assert (first.base, first.few, first.tuned) == tuple(OUTPUTS[s][0] for s in OUTPUTS)
    assert first.scores["tuned"]["label"] == "billing" and first.score("exact") == 1.0
    assert first.mark is None and first.note == "" and first.judge_winner is None
    # one win, no loss on four examples: no sign test can tell from that
    assert table.summary is not None and table.summary["verdict"].startswith(
        "too few examples to tell fine-tuned from few-shot base on category accuracy"
    )
    assert table.eval_set == "validation" and table.set_description.startswith("validation split")


def test_marks_persist_and_the_last_one_wins(run_dir: Path) -> None:
    set_mark(run_dir, 1, "bad", note="wrong category")
    set_mark(run_dir, 0, "good")
    set_mark(run_dir, 1, "skip")  # changed mind: note kept
    set_mark(run_dir, 2, note="ask a colleague")  # note only, no mark
    marks = load_marks(run_dir)  # read back from disk
    assert {i: (m["mark"], m["note"]) for i, m in marks.items()} == {
        0: ("good", ""),
        1: ("skip", "wrong category"),
        2: (None, "ask a colleague"),
    }
    rows = load_table(run_dir).rows
    assert [(r.mark, r.note) for r in rows] == [
        ("good", ""),
        ("skip", "wrong category"),
        (None, "ask a colleague"),
        (None, ""),
    ]
    set_mark(run_dir, 0, None)
    assert 0 not in load_marks(run_dir)
    with pytest.raises(ValueError):
        set_mark(run_dir, 0, "great")  # type: ignore[arg-type]


def test_a_torn_last_line_loses_only_itself(run_dir: Path) -> None:
    set_mark(run_dir, 3, "good")
    path = run_dir / "eval" / "review.jsonl"
    with open(path, "a") as handle:
        handle.write('{"index": 0, "mark": "ba')  # the process died mid-write
    assert list(load_marks(run_dir)) == [3]
    set_mark(run_dir, 0, "bad")
    assert {i: m["mark"] for i, m in load_marks(run_dir).items()} == {3: "good", 0: "bad"}
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_filters_and_search(run_dir: Path) -> None:
    rows = load_table(run_dir).rows
    assert [r.index for r in filter_rows(rows, "regressions")] == [1]
    assert [r.index for r in filter_rows(rows, "failures")] == [1, 2]
    set_mark(run_dir, 0, "good")
    rows = load_table(run_dir).rows
    assert [r.index for r in filter_rows(rows, "unreviewed")] == [1, 2, 3]
    assert [r.index for r in filter_rows(rows, "all", search="RECEIPT")] == [3]
    assert [r.index for r in filter_rows(rows, "failures", search="do not know")] == [2]
    with pytest.raises(ValueError):
        filter_rows(rows, "nonsense")  # type: ignore[arg-type]


def test_sort_by_any_score_with_missing_values_last(run_dir: Path) -> None:
    rows = load_table(run_dir).rows
    by_rouge = sort_rows(rows, "rouge_l", system="tuned", descending=True)
    scores = [r.score("rouge_l") for r in by_rouge]
    assert scores == sorted(scores, reverse=True) and by_rouge[0].index in (0, 3)
    assert [r.index for r in sort_rows(rows, "delta")] == [1, 0, 2, 3]  # -1, 0, 0, +1
    set_mark(run_dir, 2, "bad")
    rows = load_table(run_dir).rows
    assert [r.index for r in sort_rows(rows, "mark")] == [2, 0, 1, 3]  # unmarked last
    assert [r.index for r in sort_rows(rows, "index", descending=True)] == [3, 2, 1, 0]
    assert [r.index for r in sort_rows(rows, "no_such_metric")] == [0, 1, 2, 3]


def test_blind_ab_win_rate(run_dir: Path) -> None:
    table = load_table(run_dir)
    rng = random.Random(3)
    pairs = [ab_pair(row, "base_few", rng) for row in table.rows]
    assert all(isinstance(p, AbPair) for p in pairs)
    sides = {p.left for p in pairs if p is not None}
    assert sides == {"tuned", "base_few"}  # both sides occur: the order is really drawn
    for pair in pairs:
        assert pair is not None
        texts = {pair.left: pair.left_text, pair.right: pair.right_text}
        assert texts == {"tuned": OUTPUTS["tuned"][pair.index],
                         "base_few": OUTPUTS["base_few"][pair.index]}  # fmt: skip
    # the reviewer prefers the fine-tuned answer on 0 and 3, the base on 1, ties 2
    choice = {0: "tuned", 1: "base_few", 3: "tuned"}
    for pair in pairs:
        assert pair is not None
        if pair.index == 2:
            record_preference(run_dir, pair, "tie")
        else:
            record_preference(run_dir, pair, "left" if pair.left == choice[pair.index] else "right")
    stats = ab_stats(run_dir, "base_few")
    assert (stats.n, stats.wins, stats.losses, stats.ties) == (4, 2, 1, 1)
    assert stats.win_rate == pytest.approx(2.5 / 4)
    # changing one's mind on example 1 replaces the earlier choice
    pair_1 = next(p for p in pairs if p is not None and p.index == 1)
    record_preference(run_dir, pair_1, "left" if pair_1.left == "tuned" else "right")
    assert ab_stats(run_dir, "base_few").wins == 3
    assert ab_stats(run_dir, "base_zero").n == 0
    assert review_summary(run_dir, "base_few")["ab"]["wins"] == 3


def test_ab_queue_skips_rated_examples(run_dir: Path) -> None:
    table = load_table(run_dir)
    queue = ab_queue(table, seed=1)
    assert sorted(p.index for p in queue) == [0, 1, 2, 3]
    assert ab_queue(table, seed=1) == queue  # seeded: the same session twice
    record_preference(run_dir, queue[0], "left")
    assert sorted(p.index for p in ab_queue(table, seed=1)) == sorted(p.index for p in queue[1:])
    assert len(ab_queue(table, seed=1, include_rated=True)) == 4


def test_export_csv_and_jsonl(run_dir: Path, tmp_path: Path) -> None:
    set_mark(run_dir, 1, "bad", note='says "outage", is a bug')
    csv_path = export_review(run_dir, fmt="csv")
    assert csv_path == run_dir / "eval" / "review.csv"
    with open(csv_path, newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    assert len(records) == 4
    row = records[1]
    assert row["prompt"] == PROMPTS[1] and row["tuned"] == OUTPUTS["tuned"][1]
    assert row["mark"] == "bad" and row["note"] == 'says "outage", is a bug'
    assert row["tuned_label"] == "outage" and row["base_zero_primary"] == "1.0"
    assert row["regression"] == "True" and records[0]["regression"] == "False"

    jsonl_path = export_review(run_dir, tmp_path / "out.jsonl", fmt="jsonl")
    objects = [json.loads(line) for line in jsonl_path.read_text().splitlines()]
    assert [o["index"] for o in objects] == [0, 1, 2, 3]
    assert objects[1]["mark"] == "bad" and objects[1]["regression"] is True
    assert objects[3]["outputs"]["tuned"] == OUTPUTS["tuned"][3]
    assert objects[2]["scores"]["tuned"]["json_valid"] is False


def test_the_review_api_loads_no_training_stack() -> None:
    """The TUI imports these modules: they must not pull in torch (startup stays fast)."""
    from tests.test_import_hygiene import TRAINING_MODULES, _loaded_top_level_modules

    loaded = _loaded_top_level_modules(
        "import engine.eval.review, engine.eval.launch, engine.eval.runner, "
        "engine.eval.judge.judging"
    )
    assert loaded & (TRAINING_MODULES | {"rouge_score", "nltk"}) == set()


def test_word_diff_of_answer_against_reference() -> None:
    assert word_diff("the cat sat on the mat", "the dog sat on a mat") == [
        ("equal", "the"),
        ("delete", "cat"),
        ("insert", "dog"),
        ("equal", "sat on"),
        ("delete", "the"),
        ("insert", "a"),
        ("equal", "mat"),
    ]
    assert word_diff("", "new words") == [("insert", "new words")]
    assert word_diff("same", "same") == [("equal", "same")]
