"""Reading an evaluation's events back: an earlier evaluation's end is history, and a
stopped evaluation's rows are counted against what it set out to generate."""

from __future__ import annotations

from pathlib import Path

from engine.eval.events import RowsKept, ended_by_stop, eval_news, rows_kept
from engine.eval.store import VALIDATION, append_jsonl, stored_rows, system_file


def test_an_earlier_evaluations_end_does_not_end_the_one_running() -> None:
    events = [
        {"type": "eval_started", "systems": ["base_zero", "base_few"]},
        {"type": "eval_done", "verdict": "baseline"},
        {"type": "metric", "split": "train", "step": 1, "loss": 3.0},
        {"type": "eval_started", "systems": ["tuned"]},
        {"type": "eval_progress", "phase": "generate", "system": "tuned", "done": 2, "total": 14},
    ]
    news = eval_news(events)
    assert news.ended is None
    assert news.progress == events[-1]


def test_the_end_of_the_evaluation_followed_is_seen() -> None:
    events = [
        {"type": "eval_started", "systems": ["tuned"]},
        {"type": "eval_note", "message": "judge skipped"},
        {"type": "eval_stopped", "reason": "interrupted"},
    ]
    news = eval_news(events)
    assert news.ended == events[-1]
    assert news.notes == ["judge skipped"]


def test_an_end_without_its_start_in_the_batch_still_ends_it() -> None:
    # A follower reading from where the evaluation started sees no eval_started when the
    # process was stopped while loading.
    news = eval_news([{"type": "eval_failed", "error": "the model did not load"}])
    assert news.ended == {"type": "eval_failed", "error": "the model did not load"}


# ---------------------------------------------------------------------------
# what a stop kept
# ---------------------------------------------------------------------------


def test_a_stop_is_said_or_a_death_after_asking_to_stop() -> None:
    assert ended_by_stop({"type": "eval_stopped", "reason": "interrupted"}, stop_asked=False)
    failed = {"type": "eval_failed", "error": "the evaluation process exited"}
    assert ended_by_stop(failed, stop_asked=True)  # SIGTERM before its handler
    assert not ended_by_stop(failed, stop_asked=False)  # a failure nobody asked for
    assert not ended_by_stop({"type": "eval_done", "verdict": "better"}, stop_asked=True)


def test_rows_kept_counts_the_newest_starts_systems_on_its_eval_set() -> None:
    asked: list[tuple[list[str], int, str | None]] = []

    def count_stored(systems: list[str], examples: int, eval_set: str | None) -> int:
        asked.append((systems, examples, eval_set))
        return 5

    events = [
        {"type": "eval_started", "systems": ["base_zero"], "examples": 9},  # an earlier one
        {"type": "eval_stopped", "reason": "interrupted"},
        {"type": "eval_started", "systems": ["base_zero", "base_few", "tuned"], "examples": 4,
         "eval_set": "test-0a1b2c"},
        {"type": "eval_progress", "phase": "generate", "system": "base_few", "done": 1},
        {"type": "eval_stopped", "reason": "interrupted"},
    ]  # fmt: skip
    assert rows_kept(events, count_stored) == RowsKept(kept=5, planned=12)
    assert asked == [(["base_zero", "base_few", "tuned"], 4, "test-0a1b2c")]


def test_a_stop_while_loading_kept_nothing_of_its_own() -> None:
    def count_stored(systems: list[str], examples: int, eval_set: str | None) -> int:
        raise AssertionError("nothing to count before eval_started")

    events = [{"type": "eval_progress", "phase": "load", "system": "tuned", "done": 0}]
    assert rows_kept(events, count_stored) is None


def test_rows_kept_reads_the_runs_eval_files(tmp_path: Path) -> None:
    for system, n in (("base_zero", 4), ("base_few", 1)):
        rows = [{"index": i, "system": system, "output": "x"} for i in range(n)]
        append_jsonl(system_file(tmp_path, system), rows)
    events = [{"type": "eval_started", "systems": ["base_zero", "base_few", "tuned"],
               "examples": 3}]  # fmt: skip

    def count_stored(systems: list[str], examples: int, eval_set: str | None) -> int:
        return stored_rows(tmp_path, systems, examples, eval_set or VALIDATION)

    # base_zero's 4th row lies beyond the 3 examples this evaluation generates
    assert rows_kept(events, count_stored) == RowsKept(kept=4, planned=9)
