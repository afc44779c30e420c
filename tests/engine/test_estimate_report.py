"""The estimate as the wizard shows it: token figures (counted or guessed) and the lines."""

from __future__ import annotations

from engine.config.build import TrainConfig, with_overrides
from engine.config.estimate import estimate_run, format_estimate
from engine.config.estimate_report import (
    ESTIMATE_TITLE,
    GUESSED_NOTE,
    TokenFigures,
    estimate_lines,
    token_figures,
)
from engine.data.formats import Example, Message
from tests.tiny_model import SMOLLM2_135M_CONFIG


def example(line: int, user: str, answer: str) -> Example:
    return Example((Message("user", user), Message("assistant", answer)), line)


def config(**overrides: object) -> TrainConfig:
    return with_overrides(TrainConfig(model="HuggingFaceTB/SmolLM2-135M-Instruct"), **overrides)


# ---------------------------------------------------------------------------
# token figures
# ---------------------------------------------------------------------------


def test_counted_lengths_give_the_mean_and_the_nearest_rank_p99() -> None:
    lengths = list(range(1, 201))  # 1..200 tokens, unsorted order must not matter
    figures = token_figures(list(reversed(lengths)), [example(1, "ignored", "when counted")])
    assert figures.mean == 100.5
    assert figures.p99 == 198  # rank ceil(0.99 * 200) = 198
    assert figures.note == ""
    assert figures.longer_than(190) == 10


def test_without_counts_the_tokens_are_guessed_from_characters_and_said_so() -> None:
    examples = [example(1, "a" * 30, "b" * 10), example(2, "c" * 60, "d" * 20)]
    figures = token_figures([], examples)
    assert figures.mean == (40 + 80) / 2 / 4.0  # 4 characters a token
    assert figures.p99 is None
    assert figures.note == GUESSED_NOTE
    assert figures.longer_than(1) == 0  # nothing counted: nothing known to be truncated


def test_no_data_at_all_guesses_zero_tokens() -> None:
    assert token_figures([], []) == TokenFigures(0.0, None, note=GUESSED_NOTE)


# ---------------------------------------------------------------------------
# the lines
# ---------------------------------------------------------------------------


def test_without_the_models_config_only_steps_and_points_are_said() -> None:
    cfg = config(micro_batch_size=2, gradient_accumulation=2, epochs=1, eval_steps=10)
    figures = TokenFigures(50.0, 60, counted=(50, 60, 4000))
    lines = estimate_lines(cfg, None, 100, figures, prepare_hint="m: Models, p: prepare")
    assert lines == [
        ESTIMATE_TITLE,
        "Steps: 25 in total",  # 100 examples / (2 x 2)
        "Memory and time need HuggingFaceTB/SmolLM2-135M-Instruct's config.json, which "
        "appears when the model is first used or prepared (m: Models, p: prepare)",
        "Validation loss every 10 steps: 4 points",  # before step 1, at 10, 20 and 25
        "1 example(s) longer than max_seq_len are truncated",
    ]


def test_without_a_prepare_hint_the_line_has_no_brackets() -> None:
    lines = estimate_lines(config(), None, 10, TokenFigures(10.0, None, note=GUESSED_NOTE))
    assert lines[2].endswith("when the model is first used or prepared")
    assert lines[-1] == GUESSED_NOTE


def test_with_the_models_config_the_lines_are_the_engines_estimate() -> None:
    cfg = config(eval_steps=5)
    figures = TokenFigures(120.0, 300)
    lines = estimate_lines(
        cfg, SMOLLM2_135M_CONFIG, 400, figures, "cuda", 8 * 2**30, n_val=40, flops_per_s=80e9
    )
    est = estimate_run(
        cfg, SMOLLM2_135M_CONFIG, 400, 120.0, 300, "cuda", 8 * 2**30,
        n_val_examples=40, flops_per_s=80e9,
    )  # fmt: skip
    points = 1 + est.total_steps // 5 + (1 if est.total_steps % 5 else 0)
    assert lines == [
        ESTIMATE_TITLE,
        *format_estimate(est),
        f"Validation loss every 5 steps: {points} points",
    ]
    assert any(line.startswith("Peak memory: about") and "fits in" in line for line in lines)
    cost = next(line for line in lines if line.startswith("Of which: "))
    assert f"{points} validations ~" in cost and f"{est.checkpoints} checkpoints ~" in cost
    assert est.checkpoints == est.total_steps // cfg.save_steps + (
        1 if est.total_steps % cfg.save_steps else 0
    )
