"""The playground's conversation and token batching, without an app or a model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tui.playground_session import Conversation, StreamedText, batch_tokens

# ---------------------------------------------------------------------------
# the conversation
# ---------------------------------------------------------------------------


def test_each_side_keeps_its_own_answers_turn_after_turn() -> None:
    chat = Conversation()
    turn = chat.next_turn()
    assert chat.ask("base", "Hi") == [{"role": "user", "content": "Hi"}]
    chat.ask("tuned", "Hi")
    assert chat.busy and chat.pending == {(turn, "base"), (turn, "tuned")}
    assert chat.answered(turn, "base", " Hello from base.\n")
    assert chat.busy  # the fine-tuned side still writes
    assert chat.answered(turn, "tuned", "Hello from tuned.")
    assert not chat.busy
    second = chat.next_turn()
    messages = chat.ask("tuned", "And?")
    assert second == turn + 1
    assert messages == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello from tuned."},
        {"role": "user", "content": "And?"},
    ]
    assert chat.histories["base"][-1] == {"role": "assistant", "content": "Hello from base."}


def test_an_answer_nobody_awaits_is_ignored() -> None:
    chat = Conversation()
    turn = chat.next_turn()
    chat.ask("base", "Hi")
    chat.reset()  # ctrl+l while the answer was being written
    assert not chat.awaits(turn, "base")
    assert not chat.answered(turn, "base", "late")
    assert chat.histories == {"base": [], "tuned": []}
    assert chat.next_turn() == turn + 1  # a new turn never takes the cleared one's id


def test_a_failed_answer_takes_its_question_out_of_the_history() -> None:
    chat = Conversation()
    turn = chat.next_turn()
    chat.ask("base", "Hi")
    chat.answered(turn, "base", "Hello.")
    turn = chat.next_turn()
    chat.ask("base", "Too long a question")
    assert chat.failed(turn, "base")
    assert chat.histories["base"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
    ]
    assert not chat.busy
    assert not chat.failed(turn, "base")  # only once


def test_abandon_names_the_sides_that_were_waiting() -> None:
    chat = Conversation()
    chat.next_turn()
    chat.ask("base", "Hi")
    chat.ask("tuned", "Hi")
    assert sorted(chat.abandon()) == ["base", "tuned"]
    assert not chat.busy
    assert chat.abandon() == []
    assert len(chat.histories["tuned"]) == 1  # the question stays: it was asked


# ---------------------------------------------------------------------------
# token batching
# ---------------------------------------------------------------------------


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def token(side: str, text: str, id_: int = 1) -> dict[str, Any]:
    return {"type": "token", "id": id_, "side": side, "text": text}


def test_tokens_are_joined_until_the_interval_passes() -> None:
    clock = Clock()

    def events() -> Iterator[dict[str, Any]]:
        yield token("base", "Hel")
        yield token("tuned", "Hi")
        yield token("base", "lo")
        clock.now = 0.2  # past the interval: the next token hands on all so far
        yield token("base", " there")
        yield token("base", "!")

    assert list(batch_tokens(events(), interval=0.15, clock=clock)) == [
        StreamedText(1, "base", "Hello there"),
        StreamedText(1, "tuned", "Hi"),
        StreamedText(1, "base", "!"),  # the rest when the stream ends
    ]


def test_other_events_pass_through_after_the_text_before_them() -> None:
    clock = Clock()
    done = {"type": "done", "id": 1, "side": "base", "text": "Hello"}
    events = [token("base", "Hel"), token("base", "lo"), done, {"type": "exited", "code": 1}]
    assert list(batch_tokens(events, interval=0.15, clock=clock)) == [
        StreamedText(1, "base", "Hello"),
        done,
        {"type": "exited", "code": 1},
    ]


def test_answers_of_different_turns_are_kept_apart() -> None:
    events = [token("base", "old", id_=1), token("base", "new", id_=2)]
    assert list(batch_tokens(events, clock=Clock())) == [
        StreamedText(1, "base", "old"),
        StreamedText(2, "base", "new"),
    ]
