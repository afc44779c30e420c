"""LLM-as-judge against a real chat-completions server on loopback (tests/chat_server.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.eval.judge.clients import completions_url
from engine.eval.judge.config import JudgeConfig, JudgeError
from engine.eval.judge.judging import (
    JudgeItem,
    judge_items,
    judge_messages,
    judge_stats,
    parse_verdict,
)
from tests.chat_server import ChatServer

CONVERSATION = [
    {"role": "system", "content": "Classify the ticket. Reply with JSON."},
    {"role": "user", "content": "I was charged twice."},
]
REFERENCE = '{"category": "billing", "reply": "We will refund the duplicate charge."}'
JSON_ANSWER = '{"category": "billing", "reply": "Refund on its way."}'


@pytest.fixture
def chat_server() -> Iterator[type[ChatServer]]:
    """A factory of started loopback servers, all stopped after the test."""
    started: list[ChatServer] = []

    def start(mode: str = "prefer_json", require_key: str | None = None) -> ChatServer:
        server = ChatServer(mode, require_key).start()
        started.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in started:
        server.stop()


def items() -> list[JudgeItem]:
    """Four examples whose verdicts under `prefer_json` are known: tuned wins 0 and 1,
    base wins 2 (shorter, both non-JSON), 3 is a tie (same length, neither JSON)."""
    return [
        JudgeItem(0, CONVERSATION, REFERENCE, JSON_ANSWER, "This is about billing, I think."),
        JudgeItem(1, CONVERSATION, REFERENCE, JSON_ANSWER, "billing"),
        JudgeItem(2, CONVERSATION, REFERENCE, "It is a billing problem, sorry!", "billing"),
        JudgeItem(3, CONVERSATION, REFERENCE, "abc", "xyz"),
    ]


def config(server: ChatServer, **changes) -> JudgeConfig:
    return JudgeConfig(**{"url": server.url, "model": "judge-test", "retries": 0, **changes})


# ---------------------------------------------------------------------------
# Parsing and prompts
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "verdict", "reason"),
    [
        ("VERDICT: A\nIt is valid JSON.", "A", "It is valid JSON."),
        ("**Verdict:** b\nB keeps the format.", "B", "B keeps the format."),
        ("verdict = TIE. Both are fine.", "tie", "Both are fine."),
        ("Both are close, but [[B]] is better.", "B", "Both are close, but  is better."),
        ("Explanation first. [[C]]", "tie", "Explanation first."),
        ('{"verdict": "Answer A", "reason": "valid JSON"}', "A", "valid JSON"),
        ("B\nshorter and correct", "B", "shorter and correct"),
        ("I cannot decide between these.", None, "I cannot decide between these."),
    ],
)
def test_parse_verdict(text: str, verdict: str | None, reason: str) -> None:
    assert parse_verdict(text) == (verdict, reason)


def test_completions_url_accepts_base_urls_with_or_without_v1() -> None:
    assert completions_url("http://h:8000") == "http://h:8000/v1/chat/completions"
    assert completions_url("http://h:8000/v1/") == "http://h:8000/v1/chat/completions"
    full = "http://h/api/v1/chat/completions"
    assert completions_url(full) == full


def test_judge_prompt_shows_both_answers_reference_and_rubric() -> None:
    messages = judge_messages(CONVERSATION, REFERENCE, "first", "second", "Be strict.")
    assert messages[0]["role"] == "system" and messages[0]["content"].endswith("Be strict.")
    user = messages[1]["content"]
    assert "[Answer A]\nfirst\n[End of Answer A]" in user
    assert "[Answer B]\nsecond\n[End of Answer B]" in user
    assert f"[Reference answer]\n{REFERENCE}\n" in user
    assert "[user]\nI was charged twice." in user


def test_config_needs_exactly_one_judge() -> None:
    with pytest.raises(JudgeError):
        JudgeConfig()
    with pytest.raises(JudgeError):
        JudgeConfig(url="http://h", local_model="m", model="x")
    with pytest.raises(JudgeError, match="--judge-model"):
        JudgeConfig(url="http://h")
    assert JudgeConfig(url="http://h", model="a").settings() != (
        JudgeConfig(url="http://h", model="a", rubric="other").settings()
    )
    # the key's variable name and the parallelism do not change what a verdict means
    assert JudgeConfig(url="http://h", model="a").settings() == (
        JudgeConfig(url="http://h", model="a", key_env="K", concurrency=9).settings()
    )


# ---------------------------------------------------------------------------
# Against the loopback server
# ---------------------------------------------------------------------------


def test_consistent_judge_decides_each_example_and_swaps_positions(
    tmp_path: Path, chat_server
) -> None:
    server = chat_server("prefer_json")
    rows = judge_items(tmp_path, config(server), "base_few", items())
    assert len(server.requests) == 8  # two calls per example
    assert [r["winner"] for r in rows] == ["tuned", "tuned", "base_few", "tie"]
    assert all(r["consistent"] for r in rows)
    first, second = rows[0]["calls"]
    assert (first["a"], first["b"], first["verdict"]) == ("tuned", "base_few", "A")
    assert (second["a"], second["b"], second["verdict"]) == ("base_few", "tuned", "B")
    assert "valid JSON wins" in first["reason"]
    # the request is a real chat-completions body
    body = server.requests[0]
    assert body["model"] == "judge-test" and body["temperature"] == 0.0
    assert body["messages"][1]["role"] == "user"

    stats = judge_stats(rows, "base_few")
    assert (stats.n, stats.wins, stats.losses, stats.ties) == (4, 2, 1, 1)
    assert stats.win_rate == pytest.approx((2 + 0.5) / 4)
    assert stats.consistency == 1.0
    assert stats.first_position_rate == pytest.approx(3 / 6)  # 6 decisive calls, 3 for A

    stored = [
        json.loads(line) for line in (tmp_path / "eval" / "judge.jsonl").read_text().splitlines()
    ]
    assert [r["winner"] for r in stored] == ["tuned", "tuned", "base_few", "tie"]


def test_position_biased_judge_is_caught_by_the_swap(tmp_path: Path, chat_server) -> None:
    server = chat_server("always_a")
    rows = judge_items(tmp_path, config(server), "base_zero", items())
    assert all(r["consistent"] is False and r["winner"] == "tie" for r in rows)
    stats = judge_stats(rows, "base_zero")
    assert stats.consistency == 0.0
    assert stats.win_rate == 0.5  # all ties: no credit either way
    assert stats.first_position_rate == 1.0


def test_mt_bench_style_verdicts_parse(tmp_path: Path, chat_server) -> None:
    server = chat_server("mt_bench")
    rows = judge_items(tmp_path, config(server), "base_few", items())
    assert [r["winner"] for r in rows] == ["tuned", "tuned", "base_few", "tie"]


def test_unparsable_verdicts_are_counted_not_guessed(tmp_path: Path, chat_server) -> None:
    server = chat_server("garbage")
    rows = judge_items(tmp_path, config(server), "base_few", items()[:2])
    assert [r["winner"] for r in rows] == [None, None]
    stats = judge_stats(rows, "base_few")
    assert (stats.n, stats.unparsed, stats.win_rate) == (0, 2, None)


def test_verdicts_are_reused_and_only_changed_examples_rejudged(
    tmp_path: Path, chat_server
) -> None:
    server = chat_server("prefer_json")
    judge_items(tmp_path, config(server), "base_few", items())
    assert len(server.requests) == 8
    judge_items(tmp_path, config(server), "base_few", items())
    assert len(server.requests) == 8  # nothing new to judge
    changed = items()
    changed[2] = JudgeItem(2, CONVERSATION, REFERENCE, JSON_ANSWER, "billing")
    rows = judge_items(tmp_path, config(server), "base_few", changed)
    assert len(server.requests) == 10  # only example 2, twice
    assert [r["winner"] for r in rows] == ["tuned", "tuned", "tuned", "tie"]
    other_rubric = config(server, rubric="Prefer brevity.")
    judge_items(tmp_path, other_rubric, "base_few", changed[:1])
    assert len(server.requests) == 12  # another rubric is another judge


def test_api_key_comes_from_the_named_environment_variable(
    tmp_path: Path, chat_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = chat_server("prefer_json", require_key="s3cret")
    monkeypatch.delenv("TUNEDECK_TEST_KEY", raising=False)
    with pytest.raises(JudgeError) as error:
        judge_items(tmp_path, config(server, key_env="TUNEDECK_TEST_KEY"), "base_few", items())
    assert "HTTP 401" in error.value.message and "$TUNEDECK_TEST_KEY" in error.value.hint

    monkeypatch.setenv("TUNEDECK_TEST_KEY", "s3cret")
    rows = judge_items(tmp_path, config(server, key_env="TUNEDECK_TEST_KEY"), "base_few", items())
    assert [r["winner"] for r in rows] == ["tuned", "tuned", "base_few", "tie"]
    assert server.headers[-1]["Authorization"] == "Bearer s3cret"


def test_endpoint_errors_are_clear(tmp_path: Path, chat_server) -> None:
    server = chat_server("error")
    with pytest.raises(JudgeError, match="HTTP 500"):
        judge_items(tmp_path, config(server, retries=1), "base_few", items()[:1])
    assert len(server.requests) == 4  # both calls of the example, each retried once

    wrong_path = JudgeConfig(url=server.url + "/chat/completions/x", model="m", retries=0)
    with pytest.raises(JudgeError) as error:
        judge_items(tmp_path, wrong_path, "base_few", items()[:1])
    assert "HTTP 404" in error.value.message and "base URL" in error.value.hint

    server.stop()  # nothing listens on the port any more
    with pytest.raises(JudgeError, match="unreachable"):
        judge_items(tmp_path, config(server), "base_few", items()[:1])
