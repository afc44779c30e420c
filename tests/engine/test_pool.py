"""Prompt pools (records without answers) in every shape the readers take, their lint, the
checks on a correction, and a review state that survives kill -9 mid-write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.data.formats import load_examples
from engine.data.lint.linter import lint_file
from engine.data.pool import is_pool_file, pool_findings, read_pool
from engine.eval.review_marks import load_marks, set_mark, set_verdict
from engine.eval.sets import EvalDataError, prepare_test_set
from engine.loop.corrections import check_correction, compact_json, pretty_json
from tests.conftest import REPO_ROOT

SAMPLE = REPO_ROOT / "sample_data"
SYSTEM = "Classify the ticket."


def write(path: Path, lines: list[object]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    "record",
    [
        {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi"}]},
        {"conversations": [{"from": "human", "value": "Hi"}]},
        {"prompt": "Hi", "system": SYSTEM},
        {"instruction": "Hi", "input": ""},
    ],
    ids=["chat", "sharegpt", "prompt", "alpaca"],
)
def test_records_without_answers_are_prompts(tmp_path: Path, record: dict) -> None:
    path = write(tmp_path / "pool.jsonl", [record, record | {}])
    assert is_pool_file(path)
    pool = read_pool(path)
    assert pool.problems == [] and [e.line for e in pool.prompts] == [1, 2]
    assert pool.prompts[0].messages[-1].content == "Hi" and pool.prompts[0].answer == ""


def test_a_one_column_csv_is_a_pool_and_multi_turn_chats_keep_their_turns(tmp_path: Path) -> None:
    csv = tmp_path / "pool.csv"
    csv.write_text('ticket\nMy invoice is wrong\n"Sync, again, fails"\n')
    assert is_pool_file(csv)
    assert [e.messages[-1].content for e in read_pool(csv).prompts] == [
        "My invoice is wrong", "Sync, again, fails"]  # fmt: skip
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
             {"role": "user", "content": "c"}]  # fmt: skip
    chat = read_pool(write(tmp_path / "chat.jsonl", [{"messages": turns}])).prompts[0]
    assert [m.role for m in chat.messages] == ["user", "assistant", "user"]


def test_a_pool_with_an_answered_or_broken_record_names_its_line(tmp_path: Path) -> None:
    answered = {"prompt": "b", "completion": "x"}
    path = write(tmp_path / "pool.jsonl", [{"prompt": "a"}, answered, {"prompt": "c"}])
    path.write_text(path.read_text() + "{not json\n")
    pool = read_pool(path)
    assert [(line, p.code) for line, p in pool.problems] == [(2, "has-answer"), (4, "invalid-json")]
    with pytest.raises(EvalDataError, match=r"prompt pool pool.jsonl line 2: record has an answer"):
        prepare_test_set(tmp_path / "run", path)
    report = lint_file(path)
    assert report.format == "pool" and report.count == 2 and report.exit_code == 1
    assert {(f.line, f.code) for f in report.errors} == {(2, "has-answer"), (4, "invalid-json")}


def test_pool_lint_finds_empty_duplicate_and_seen_prompts(tmp_path: Path) -> None:
    train = load_examples(SAMPLE / "support_tickets.jsonl").examples
    seen = train[0].messages[1].content
    near = seen.replace("?", "") + " please"
    lines = [{"prompt": "Where is my invoice?"}, {"prompt": "  "},
             {"prompt": "where is my  invoice?"}, {"prompt": seen}, {"prompt": near}]  # fmt: skip
    pool = read_pool(write(tmp_path / "pool.jsonl", lines))
    found = [(f.line, f.code, f.message) for f in pool_findings(pool.prompts, {"training": train})]
    assert found == [
        (2, "empty-prompt", "the prompt is empty"),
        (3, "duplicate-prompt", "the same prompt as line 1"),
        (4, "prompt-seen", f"the same prompt as line {train[0].line} of training"),
        (5, "prompt-seen", f"a near-duplicate of line {train[0].line} of training"),
    ]
    assert read_pool(SAMPLE / "support_tickets_pool.jsonl").problems == []
    assert pool_findings(read_pool(SAMPLE / "support_tickets_pool.jsonl").prompts,
                         {"training": train}) == []  # fmt: skip


def test_a_correction_is_checked_against_the_training_answers() -> None:
    answers = ['{"category": "bug", "reply": "x"}', '{"category": "billing", "reply": "y"}']
    assert check_correction('{"category": "outage", "reply": "z"}', answers).ok
    bad = check_correction("outage", answers)
    assert not bad.ok and bad.error is not None and bad.error.startswith("not valid JSON")
    assert check_correction("[1]", answers).error == (
        "not a JSON object: the training answers are JSON objects"
    )
    odd = check_correction('{"categroy": "bug", "reply": "z"}', answers)
    assert odd.ok and odd.warnings == [
        "key 'categroy' is in no training answer",
        "keys the training answers use are missing: category",
    ]
    assert check_correction("free text", ["plain", "answers"]).ok
    assert check_correction("  ", answers).error == "the corrected answer is empty"
    pretty = pretty_json('{"category": "bug", "reply": "é"}')
    assert pretty.startswith("{\n") and compact_json(pretty) == '{"category": "bug", "reply": "é"}'


def test_review_state_survives_kill_9_mid_write(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    set_verdict(run, 0, "corrected", '{"category": "bug"}')
    set_mark(run, 1, "good")
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from engine.eval.review_marks import set_verdict\n"
        "run = Path(sys.argv[1])\n"
        "print('ready', flush=True)\n"
        "i = 0\n"
        "while True:\n"
        "    set_verdict(run, 2, 'accepted', 'answer %d ' % i + 'x' * 4000)\n"
        "    i += 1\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(run)], cwd=REPO_ROOT,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    state = load_marks(run)  # a torn last line (if any) is skipped
    assert state[0]["verdict"] == "corrected" and state[0]["answer"] == '{"category": "bug"}'
    assert state[1]["mark"] == "good" and state[2]["verdict"] == "accepted"
    set_mark(run, 2, "bad")  # the next keystroke appends after the torn tail is cut
    after = load_marks(run)
    assert after[2]["mark"] == "bad" and after[2]["verdict"] == "accepted"
    lines = (run / "eval" / "review.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # every line whole again
