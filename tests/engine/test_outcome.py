"""Runs compared by outcome on one test file: paired test, sentences, one metric, and the
sets a comparison refuses (a run not scored on the file, another version of it, a pool)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import pytest

from engine.core.errors import TunedeckError
from engine.data.formats import Example, load_examples, write_chat_jsonl
from engine.eval import sets
from engine.eval.metrics import METRICS_VERSION
from engine.eval.primary import primary_path, run_primary
from engine.eval.sets import prepare_test_set, read_split
from engine.eval.stats import mean_interval
from engine.eval.store import SET_FILE, append_jsonl, set_path, system_file
from engine.eval.summary import build_scoring, build_summary, score_output, write_summary
from engine.runs.outcome import compare_outcome, outcome_on_set, shared_test_sets
from tests.conftest import REPO_ROOT
from tests.engine.test_primary_metric import make_run

TICKETS = load_examples(REPO_ROOT / "sample_data" / "support_tickets.jsonl").examples
TEST = TICKETS[:20]
A, B, C = "20260101-000000-aaaaaa", "20260102-000000-bbbbbb", "20260103-000000-cccccc"


def ticket_run(home: Path, run_id: str) -> Path:
    """A finished run of the sample tickets (category accuracy), never evaluated."""
    return make_run(home, run_id, TICKETS[26:], TICKETS[20:26])


def write_test_file(
    folder: Path, examples: list[Example] = TEST, name: str = "tickets_test"
) -> Path:
    path = folder / f"{name}.jsonl"
    write_chat_jsonl(examples, path)
    return path


def answers(right: Iterable[int], examples: list[Example] = TEST) -> list[str]:
    """The reference for the examples in `right`; elsewhere, the wrong category."""
    right = set(right)
    outs = []
    for i, example in enumerate(examples):
        data = json.loads(example.answer)
        if i not in right:
            data["category"] = "bug" if data["category"] != "bug" else "billing"
        outs.append(example.answer if i in right else json.dumps(data))
    return outs


def score_on(run_dir: Path, path: Path, outputs: list[str]) -> str:
    """Store the fine-tuned model's answers to the first examples of a test file, scored
    under the run's metric, and the set's summary, as `tunedeck eval --data` would."""
    eval_set = prepare_test_set(run_dir, path)
    refs = [e.answer for e in eval_set.examples]
    ctx, index = build_scoring(read_split(run_dir, "train"), refs, run_primary(run_dir))
    rows = [
        {"index": i, "system": "tuned", "output": out, "reference": refs[i], "prompt": "p",
         "messages": [], "metrics_version": METRICS_VERSION, "scored_as": ctx.spec,
         "metrics": score_output(out, refs[i], ctx, index)}
        for i, out in enumerate(outputs)
    ]  # fmt: skip
    append_jsonl(system_file(run_dir, "tuned", eval_set.name), rows)
    n = len(outputs)
    extra = {"examples": n, "eval_set": eval_set.to_json(n)}
    summary = build_summary(run_dir, ["tuned"], ctx, {}, n, extra, eval_set.name)
    write_summary(run_dir, summary, eval_set.name)
    return eval_set.name


def two_scored(home: Path, folder: Path, right_a: Iterable[int], right_b: Iterable[int]):
    a, b = ticket_run(home, A), ticket_run(home, B)
    path = write_test_file(folder)
    score_on(a, path, answers(right_a))
    score_on(b, path, answers(right_b))
    return a, b, path


def sign_test(wins: int, losses: int) -> float:
    """The exact two-sided binomial test of the hand count, written out here."""
    n = wins + losses
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n)


# -- the paired test and its sentence ----------------------------------------------------


def test_b_beats_a_by_the_hand_count(tunedeck_home: Path, tmp_path: Path) -> None:
    right_a = set(range(12))  # 12 of 20
    right_b = (right_a - {3}) | set(range(12, 20))  # 19 of 20: 8 won, 1 lost
    a, b, path = two_scored(tunedeck_home, tmp_path, right_a, right_b)
    outcome = compare_outcome([a, b], str(path))
    assert (outcome.file, outcome.total, outcome.examples, outcome.coverage()) == (
        "tickets_test.jsonl", 20, 20, "")  # fmt: skip
    assert outcome.primary["name"] == "category accuracy"
    assert outcome.primary_line().startswith(f"primary metric: category accuracy (run {A}'s: ")
    versus = outcome.versus[0]
    wins = sum(1 for i in range(20) if i in right_b and i not in right_a)
    losses = sum(1 for i in range(20) if i in right_a and i not in right_b)
    assert (versus.wins, versus.losses, versus.ties) == (wins, losses, 20 - wins - losses) == (
        8, 1, 11)  # fmt: skip
    assert versus.p_value == pytest.approx(sign_test(8, 1)) == pytest.approx(20 / 512)
    assert versus.significant

    first, later = outcome.runs
    assert (first.primary.mean, later.primary.mean) == (0.6, 0.95)
    interval = mean_interval([1.0] * 19 + [0.0])
    assert interval is not None and (later.primary.low, later.primary.high) == (
        interval.low, interval.high)  # fmt: skip
    assert later.standard["exact"].mean == 0.95 and later.standard["json_valid"].mean == 1.0
    assert 0.9 < later.standard["rouge_l"].mean < 1.0  # only the category word differs
    assert outcome.sentences(["A", "B"]) == [
        f"B beats A on category accuracy: {later.primary.text()} vs {first.primary.text()}, "
        "8 wins / 1 loss, p = 0.039"
    ]
    assert later.primary.text().startswith("0.95 [0.")
    assert outcome.sentences()[0].startswith(f"run {B} beats run {A} on category accuracy")
    data = json.loads(json.dumps(outcome.to_json()))
    assert data["versus"][0]["wins"] == 8 and data["runs"][1]["primary"]["mean"] == 0.95
    assert data["sentences"] == outcome.sentences()


def test_worse_too_few_and_the_same(tunedeck_home: Path, tmp_path: Path) -> None:
    a, b, path = two_scored(tunedeck_home, tmp_path, range(12), range(20))
    worse = compare_outcome([b, a], str(path))  # A after B: 8 losses, no win
    assert (worse.versus[0].wins, worse.versus[0].losses) == (0, 8)
    assert worse.sentences(["B", "A"])[0].startswith("A is worse than B on category accuracy: ")
    assert worse.sentences(["B", "A"])[0].endswith("0 wins / 8 losses, p = 0.008")

    c = ticket_run(tunedeck_home, C)
    score_on(c, path, answers(range(14)))  # two more right than A: p = 0.5
    few = compare_outcome([a, c], str(path))
    assert few.versus[0].p_value == pytest.approx(sign_test(2, 0)) == 0.5
    assert few.sentences(["A", "C"]) == [
        "too few examples to tell C from A on category accuracy: "
        f"{few.runs[1].primary.text()} vs {few.runs[0].primary.text()}, 2 wins / 0 losses, "
        "p = 0.50"
    ]
    same = compare_outcome([a, a.parent / A, c, a], str(path))  # repeats dropped
    assert [r.id for r in same.runs] == [A, C]
    three = compare_outcome([a, b, c], str(path))
    assert [v.run for v in three.versus] == [B, C] and len(three.sentences()) == 2


def test_identical_answers_score_the_same(tunedeck_home: Path, tmp_path: Path) -> None:
    a, b, path = two_scored(tunedeck_home, tmp_path, range(10), range(10))
    sentence = compare_outcome([a, b], str(path)).sentences(["A", "B"])[0]
    assert sentence.startswith("B and A score the same on every example's category accuracy")
    assert sentence.endswith("0 wins / 0 losses, p = 1.00")


# -- one metric ---------------------------------------------------------------------------


def test_runs_are_rescored_under_the_first_runs_metric(tunedeck_home: Path, tmp_path: Path) -> None:
    a, b = ticket_run(tunedeck_home, A), ticket_run(tunedeck_home, B)
    run_primary(b, "fields")  # B scores by field accuracy
    path = write_test_file(tmp_path)
    score_on(a, path, answers(range(10)))
    score_on(b, path, answers(range(16)))
    outcome = compare_outcome([a, b], str(path))
    assert outcome.primary["name"] == "category accuracy" and outcome.primary["of"] == f"run {A}'s"
    assert outcome.runs[1].primary.mean == 0.8  # by category: 16 of 20
    assert (outcome.versus[0].wins, outcome.versus[0].losses) == (6, 0)

    on_fields = compare_outcome([a, b], str(path), "fields")
    assert on_fields.primary["name"] == "field accuracy" and on_fields.primary["of"] == (
        "chosen by you")  # fmt: skip
    assert on_fields.runs[1].primary.mean == 0.9  # the reply right in all: 16 + 4 x 0.5
    assert on_fields.runs[0].primary.mean == 0.75


def test_a_run_without_training_data_keeps_the_stored_scores(
    tunedeck_home: Path, tmp_path: Path
) -> None:
    a, b, path = two_scored(tunedeck_home, tmp_path, range(10), range(15))
    (a / "data" / "train.jsonl").write_text("")  # the first run has no training split,
    primary_path(a).unlink()  # so no metric of its own
    outcome = compare_outcome([a, b], str(path))
    assert outcome.primary["name"] == "category accuracy" and "as stored" in outcome.primary["of"]
    assert [r.primary.mean for r in outcome.runs] == [0.5, 0.75]


# -- examples every run answered ----------------------------------------------------------


def test_only_the_examples_every_run_answered_are_compared(
    tunedeck_home: Path, tmp_path: Path
) -> None:
    a, b = ticket_run(tunedeck_home, A), ticket_run(tunedeck_home, B)
    path = write_test_file(tmp_path)
    score_on(a, path, answers(range(12)))
    score_on(b, path, answers(range(20))[:15])  # --max-examples 15
    outcome = compare_outcome([a, b], str(path))
    assert (outcome.total, outcome.examples) == (20, 15)
    assert [r.answered for r in outcome.runs] == [20, 15]
    assert outcome.coverage() == (
        f"compared on the 15 examples every run answered; 5 of 20 left out (run {B} answered 15)"
    )
    assert outcome.runs[0].primary.mean == 0.8  # 12 of the first 15
    assert (outcome.versus[0].wins, outcome.versus[0].losses, outcome.versus[0].ties) == (3, 0, 12)


# -- what is refused ----------------------------------------------------------------------


def test_a_run_not_scored_on_the_file_is_named_with_the_command(
    tunedeck_home: Path, tmp_path: Path
) -> None:
    a, b = ticket_run(tunedeck_home, A), ticket_run(tunedeck_home, B)
    c = ticket_run(tunedeck_home, C)
    path = write_test_file(tmp_path)
    score_on(a, path, answers(range(12)))
    with pytest.raises(TunedeckError) as refused:
        compare_outcome([a, b, c], str(path))
    message, hint = refused.value.message, refused.value.hint or ""
    assert message.startswith("not every run was scored on tickets_test.jsonl")
    assert f"run {B} never was" in message and f"run {C} never was" in message
    assert A not in message
    assert f"tunedeck eval {B} --data {path}" in hint and f"tunedeck eval {C} --data {path}" in hint
    assert not set_path(b, sets.test_set_of(path)).exists()  # nothing created
    with pytest.raises(TunedeckError, match="two or more different runs"):
        compare_outcome([a, a], str(path))


def test_a_run_scored_on_another_version_of_the_file_is_refused(
    tunedeck_home: Path, tmp_path: Path
) -> None:
    a, b = ticket_run(tunedeck_home, A), ticket_run(tunedeck_home, B)
    path = write_test_file(tmp_path)
    old = score_on(a, path, answers(range(12)))
    write_test_file(tmp_path, TEST[:19])  # the user edits the file, then scores B on it
    score_on(b, path, answers(range(19), TEST[:19]))
    with pytest.raises(TunedeckError) as refused:
        compare_outcome([a, b], str(path))
    assert f"run {A} only on another version of it ({old})" in refused.value.message
    assert B not in refused.value.message
    assert f"tunedeck eval {A} --data {path}" in (refused.value.hint or "")
    assert shared_test_sets([a, b]) == []


def test_a_prompt_pool_is_refused(tunedeck_home: Path, tmp_path: Path) -> None:
    a, b, path = two_scored(tunedeck_home, tmp_path, range(12), range(14))
    name = shared_test_sets([a, b])[0]
    for run_dir in (a, b):
        marker = set_path(run_dir, name) / SET_FILE
        marker.write_text(json.dumps({**json.loads(marker.read_text()), "pool": True}))
    with pytest.raises(TunedeckError, match="a prompt pool has no reference answers to compare"):
        compare_outcome([a, b], str(path))
    assert shared_test_sets([a, b]) == []


def test_shared_sets_and_the_outcome_by_set_name(tunedeck_home: Path, tmp_path: Path) -> None:
    a, b, path = two_scored(tunedeck_home, tmp_path, range(12), range(20))
    only_a = write_test_file(tmp_path, TICKETS[30:40], "more_tickets")
    score_on(a, only_a, answers(range(10), TICKETS[30:40]))
    shared = shared_test_sets([a, b])
    assert len(shared) == 1 and shared[0].startswith("test-tickets_test-")
    assert shared_test_sets([a, tmp_path / "missing"]) == []
    outcome = outcome_on_set([a, b], shared[0])
    assert outcome.file == "tickets_test.jsonl" and outcome.versus[0].wins == 8
    path.unlink()  # the file is gone: found again by its path
    assert compare_outcome([a, b], str(path)).eval_set == shared[0]
    with pytest.raises(TunedeckError, match="test file"):
        compare_outcome([a, b], str(tmp_path / "never.jsonl"))
