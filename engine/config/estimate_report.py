"""The estimate as a user reads it before a run: the token figures and the text lines.

`token_figures` says how long the training examples are: the token survey's counts when
they are in, else a guess from characters (CHARS_PER_TOKEN) with a note saying so.
`estimate_lines` turns a config, the data's size and those figures into the lines the
wizard shows beside the fields: memory and time when the model's config.json is on disk
(`estimate_run`, `format_estimate`), the step count alone until then, the validation
points, the examples max_seq_len truncates, and the note about guessed tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.config.advice import optimizer_steps
from engine.config.build import TrainConfig
from engine.config.estimate import Device, estimate_run, format_estimate, validation_passes
from engine.config.recipe import CHARS_PER_TOKEN
from engine.data.formats import Example
from engine.data.token_lengths import percentile

__all__ = ["ESTIMATE_TITLE", "GUESSED_NOTE", "TokenFigures", "estimate_lines", "token_figures"]

ESTIMATE_TITLE = "Estimate (before the run; a guide, not a promise)"
GUESSED_NOTE = "Tokens guessed from characters: counting them is still running"


@dataclass(frozen=True)
class TokenFigures:
    """How long the training examples are, in tokens (chat template applied)."""

    mean: float
    """Mean tokens per example."""
    p99: int | None
    """99th-percentile tokens per example (None: not counted yet)."""
    counted: tuple[int, ...] = ()
    """The counted lengths (every example, or a sample of a big file); empty until then."""
    note: str = ""
    """Why the figures are a guess, when they are one."""

    def longer_than(self, limit: int) -> int:
        """Counted examples longer than `limit` tokens (0 until they are counted)."""
        return sum(1 for n in self.counted if n > limit)


def token_figures(lengths: Sequence[int], examples: Sequence[Example]) -> TokenFigures:
    """The survey's figures when it counted anything, else a guess from the characters.

    Args:
        lengths: tokens per example from the token survey (empty: not counted yet).
        examples: the dataset's examples, for the guess (empty: no data loaded yet).
    """
    if lengths:
        ordered = sorted(lengths)
        return TokenFigures(sum(ordered) / len(ordered), percentile(ordered, 0.99), tuple(lengths))
    chars = sum(len(m.content) for e in examples for m in e.messages)
    mean = chars / max(len(examples), 1) / CHARS_PER_TOKEN
    return TokenFigures(mean, None, note=GUESSED_NOTE)


def estimate_lines(
    cfg: TrainConfig,
    model_config: dict[str, Any] | None,
    n_train: int,
    tokens: TokenFigures,
    device: Device = "cpu",
    free_gpu_bytes: int | None = None,
    *,
    n_val: int | None = None,
    flops_per_s: float | None = None,
    prepare_hint: str = "",
) -> list[str]:
    """The estimate of training `cfg` as short lines, the title first.

    Args:
        cfg: the run configuration (its data section does not matter here).
        model_config: the base model's config.json; None while it is not on disk, when
            only the step count can be said.
        n_train: training examples after the split (0: not split yet).
        tokens: the examples' lengths (`token_figures`).
        device, free_gpu_bytes: where the run trains, and the memory free there.
        n_val: validation examples, to add evaluation time.
        flops_per_s: throughput of one device; None: the engine's default for `device`.
        prepare_hint: how the user gets the model onto disk, added in brackets to the line
            that asks for its config.json.
    """
    lines = [ESTIMATE_TITLE]
    if model_config is None:
        _, total = optimizer_steps(cfg, max(n_train, 1))
        lines.append(f"Steps: {total} in total")
        hint = f" ({prepare_hint})" if prepare_hint else ""
        lines.append(
            f"Memory and time need {cfg.model}'s config.json, which appears when the "
            f"model is first used or prepared{hint}"
        )
    else:
        est = estimate_run(
            cfg,
            model_config,
            n_train,
            tokens.mean,
            tokens.p99,
            device,
            free_gpu_bytes,
            n_val_examples=n_val,
            flops_per_s=flops_per_s,
        )
        lines += format_estimate(est)
        total = est.total_steps
    points = validation_passes(cfg, total)
    lines.append(f"Validation loss every {cfg.eval_steps} steps: {points} points")
    over = tokens.longer_than(cfg.max_seq_len)
    if over:
        lines.append(f"{over} example(s) longer than max_seq_len are truncated")
    if tokens.note:
        lines.append(tokens.note)
    return lines
