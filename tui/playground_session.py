"""The playground's conversation and its streamed text, without Textual.

`Conversation` holds what each side (base, fine-tuned) has been asked and has answered,
and the answers asked for and not done yet; the Playground screen only draws it.
`batch_tokens` joins the model process's `token` events into pieces of text per answer,
handed on at most every FLUSH_S, so the transcripts redraw a few times a second over SSH
instead of once a token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.playground.server import SIDES

FLUSH_S = 0.15
"""Streamed text is handed to the transcripts at most this often (about 7 redraws/s)."""

Message = dict[str, str]
"""One chat turn as the model process takes it: {"role", "content"}."""


def _empty_histories() -> dict[str, list[Message]]:
    return {side: [] for side in SIDES}


@dataclass
class Conversation:
    """Both sides' histories, and the answers awaited, keyed by (turn, side).

    Each side keeps its own answers, so a second turn continues two different
    conversations. A question whose answer failed leaves the history (the model does not
    see it again); it stays on screen.
    """

    histories: dict[str, list[Message]] = field(default_factory=_empty_histories)
    pending: set[tuple[int, str]] = field(default_factory=set)
    """(turn, side) of the answers asked for and not done yet."""
    turn: int = 0
    """The newest turn; it keeps counting over a reset, so a late answer of a cleared
    conversation never passes for one of the new."""

    @property
    def busy(self) -> bool:
        """An answer is being written or waits to be."""
        return bool(self.pending)

    def next_turn(self) -> int:
        """Start a turn: the id its answers come back with."""
        self.turn += 1
        return self.turn

    def ask(self, side: str, text: str) -> list[Message]:
        """Add the user's `text` to `side`'s history and await its answer in this turn.

        Returns:
            The side's whole history, the messages to send to the model.
        """
        self.histories[side].append({"role": "user", "content": text})
        self.pending.add((self.turn, side))
        return self.histories[side]

    def awaits(self, id_: Any, side: str) -> bool:
        """Whether text for (id_, side) belongs to an answer still awaited."""
        return (id_, side) in self.pending

    def answered(self, id_: Any, side: str, text: str) -> bool:
        """Keep a finished answer; False when nobody awaits it (a cleared conversation's)."""
        if not self.awaits(id_, side):
            return False
        self.pending.discard((id_, side))
        self.histories[side].append({"role": "assistant", "content": text.strip()})
        return True

    def failed(self, id_: Any, side: str) -> bool:
        """An awaited answer failed: its question leaves the history; False when not awaited."""
        if not self.awaits(id_, side):
            return False
        self.pending.discard((id_, side))
        history = self.histories[side]
        if history and history[-1]["role"] == "user":
            history.pop()
        return True

    def abandon(self) -> list[str]:
        """No awaited answer will come (the process ended, a request was not sent).

        Returns:
            The sides that were waiting, to tell each so.
        """
        sides = [side for _, side in self.pending]
        self.pending.clear()
        return sides

    def reset(self) -> None:
        """Start over: empty histories, nothing awaited."""
        self.pending.clear()
        self.histories = _empty_histories()


@dataclass(frozen=True)
class StreamedText:
    """Text one side's answer wrote since the last piece (several tokens joined)."""

    id: Any
    side: str
    text: str


def batch_tokens(
    events: Iterable[dict[str, Any]],
    interval: float = FLUSH_S,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[StreamedText | dict[str, Any]]:
    """The model process's events with its `token` events joined per answer.

    Buffered text is handed on as `StreamedText` once `interval` seconds passed since the
    last hand-over, before any other event (so an answer's text comes before its `done`),
    and when the events end. Every other event passes through as it is.
    """
    buffered: dict[tuple[Any, str], list[str]] = {}
    flushed = clock()

    def flush() -> list[StreamedText]:
        pieces = [
            StreamedText(id_, side, "".join(parts)) for (id_, side), parts in buffered.items()
        ]
        buffered.clear()
        return pieces

    for event in events:
        if event.get("type") == "token":
            key = (event.get("id"), str(event.get("side")))
            buffered.setdefault(key, []).append(str(event.get("text", "")))
            if clock() - flushed >= interval:
                yield from flush()
                flushed = clock()
        else:
            yield from flush()
            yield event
    yield from flush()
