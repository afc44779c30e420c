"""How answers are drawn: one settings type for evaluation, the playground, the judge, the
CLI and the TUI's dialogs, with one validator.

Greedy when the temperature is 0 (the same answer every time); above 0 the answer is
sampled from the `top_p` nucleus, seeded when `seed` is set.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.errors import TunedeckError

MAX_NEW_TOKENS = 32_768
"""The longest answer anything may ask for (a thinking model's answer can be long)."""
MAX_TEMPERATURE = 5.0


def check_sampling(
    max_new_tokens: int | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
) -> None:
    """Raise a TunedeckError naming the setting (its `field`) that is out of range.

    `max_new_tokens` None: chosen later (evaluation's automatic limit).
    """
    if max_new_tokens is not None and not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise TunedeckError(
            f"max new tokens must be between 1 and {MAX_NEW_TOKENS}, not {max_new_tokens}",
            field="max_new_tokens",
        )
    if not 0.0 <= temperature <= MAX_TEMPERATURE:
        raise TunedeckError(
            f"temperature must be between 0 and {MAX_TEMPERATURE:g}, not {temperature:g}",
            hint="0 is greedy; 0.7 is a common choice for varied answers",
            field="temperature",
        )
    if not 0.0 < top_p <= 1.0:
        raise TunedeckError(f"top_p must be above 0 and at most 1, not {top_p:g}", field="top_p")
    if seed is not None and seed < 0:
        raise TunedeckError(f"the seed must be 0 or more, not {seed}", field="seed")


@dataclass(frozen=True)
class Sampling:
    """How answers are drawn: greedy when temperature is 0."""

    max_new_tokens: int = 256
    """Most tokens one answer may have."""
    temperature: float = 0.0
    """0: greedy (the same answer every time); higher: more varied answers."""
    top_p: float = 1.0
    """Nucleus sampling: draw from the most likely tokens that make up this much mass."""
    seed: int | None = None
    """Seed for sampling (None: a different draw each time)."""

    def __post_init__(self) -> None:
        check_sampling(self.max_new_tokens, self.temperature, self.top_p, self.seed)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0

    def describe(self) -> str:
        """One line for a status bar: `max 256 tokens · greedy`."""
        if self.greedy:
            return f"max {self.max_new_tokens} tokens · greedy"
        seed = f" · seed {self.seed}" if self.seed is not None else ""
        return (
            f"max {self.max_new_tokens} tokens · temperature {self.temperature:g} · "
            f"top_p {self.top_p:g}{seed}"
        )


PLAYGROUND = Sampling(max_new_tokens=256, top_p=0.95)
"""The playground's starting settings (greedy; top_p applies once a temperature is set)."""
