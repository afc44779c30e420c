"""What a judge is and what it is told: its settings, the default rubric, its error type.

A leaf of engine.eval.judge: the clients (engine.eval.judge.clients) and the judging itself
(engine.eval.judge.judging) both build on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

from engine.core.errors import TunedeckError
from engine.eval.store import fingerprint

DEFAULT_RUBRIC = (
    "Decide which answer better does what the conversation asks, using the reference "
    "answer as the example of a correct answer. In order of importance:\n"
    "1. Format: the answer has exactly the required form (for example valid JSON with the "
    "required keys and nothing around it, or only a label when a label is asked for).\n"
    "2. Correctness: the label, category or facts agree with the reference.\n"
    "3. Quality: helpful, concise, no invented details.\n"
    "Do not prefer an answer for being longer or for its position."
)

Verdict = Literal["A", "B", "tie"]
Completer = Callable[[list[list[dict[str, str]]]], list[str]]
"""Answers a batch of chats (each a list of {"role", "content"}) with one text each."""


class JudgeError(TunedeckError):
    """The judge endpoint could not be used."""


@dataclass(frozen=True)
class JudgeConfig:
    """Where the judge is and what it is told."""

    url: str | None = None
    """Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."""
    model: str | None = None
    """Model name the endpoint serves (required with `url`)."""
    key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (no key is sent when it is unset)."""
    local_model: str | None = None
    """Instead of an endpoint: a local model (name, directory or hub id) run here."""
    rubric: str = DEFAULT_RUBRIC
    against: str | None = None
    """The base system to compare with; None: the one with the better primary score."""
    timeout_s: float = 120.0
    concurrency: int = 4
    """Requests in flight at once (servers batch them)."""
    max_tokens: int = 256
    retries: int = 2
    """Retries of a request on overload (429), server errors (5xx) and timeouts."""

    def __post_init__(self) -> None:
        if (self.url is None) == (self.local_model is None):
            raise JudgeError(
                "a judge needs exactly one of an endpoint URL and a local model",
                hint="--judge-url URL --judge-model NAME, or --judge-local MODEL",
            )
        if self.url is not None and not self.model:
            raise JudgeError(
                "--judge-url needs --judge-model (the name the server serves)", field="model"
            )
        if self.concurrency < 1 or self.max_tokens < 16 or self.timeout_s <= 0 or self.retries < 0:
            raise JudgeError(
                "judge settings out of range",
                hint="concurrency >= 1, max_tokens >= 16, timeout > 0, retries >= 0",
            )

    def settings(self) -> str:
        """Fingerprint of what decides a verdict (the key is not part of it)."""
        data = asdict(self)
        for name in ("key_env", "timeout_s", "concurrency", "against", "retries"):
            data.pop(name)
        return fingerprint(data)
