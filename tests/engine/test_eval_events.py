"""Reading an evaluation's news from run events: an earlier evaluation's end is history."""

from __future__ import annotations

from tui.eval_follow import eval_news


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
