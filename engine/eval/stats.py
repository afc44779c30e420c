"""How sure an evaluation is: 95 % intervals for a mean score, and a paired test.

Pure Python (math and random): the TUI reads summaries without numpy or scipy.

- Interval of a system's mean primary score: the Wilson score interval when every
  per-example score is 0 or 1 (a proportion: label correct, exact match), a percentile
  bootstrap of the mean otherwise (ROUGE-L, field accuracy), 2,000 resamples with a fixed
  seed so the same rows always give the same interval.
- Fine-tuned against a base system on the same examples: the exact two-sided sign test on
  the examples where one scored higher (wins vs losses; ties carry no information and are
  left out). For 0/1 scores this is the exact McNemar test on the discordant pairs; for
  continuous scores it is the paired sign test, which asks the same question the verdict
  reports ("better on how many examples, worse on how many") without assuming anything
  about the size of the differences.

The verdict's rule (engine.eval.summary): a difference is real when p < ALPHA. Below
MIN_DECIDING examples that differ no split can reach it (six wins and no loss give
p = 0.031, five give 0.0625), so thin evidence reads "too few examples to tell" by the
same rule, not by an extra threshold.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.05
"""Two-sided significance level of the paired test."""
Z_95 = 1.959963984540054
"""The standard normal quantile of a two-sided 95 % interval."""
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20240611
MIN_DECIDING = 6
"""Examples that must differ before the sign test can reach p < 0.05 at all."""
LARGE_GAP = 0.2
"""A difference of means this large (absolute, on a 0..1 score) is clear on its face."""


@dataclass(frozen=True)
class Interval:
    """A 95 % interval of a mean score, and how it was computed."""

    low: float
    high: float
    method: str
    """`wilson` (0/1 scores) or `bootstrap` (continuous scores)."""


@dataclass(frozen=True)
class PairedTest:
    """Wins, losses and ties of one system over another on the same examples."""

    wins: int
    losses: int
    ties: int
    p_value: float
    """Exact two-sided sign test on wins vs losses (1.0 when none differ)."""

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (0, 1 when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be 0 to {n}, not {successes}")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(
    values: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of the mean (seeded: same values, same interval)."""
    n = len(values)
    if n == 0:
        return 0.0, 1.0
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    low = means[int(math.floor(0.025 * (resamples - 1)))]
    high = means[int(math.ceil(0.975 * (resamples - 1)))]
    return low, high


def mean_interval(values: Sequence[float]) -> Interval | None:
    """The 95 % interval of the mean of per-example scores in 0..1 (None: no scores)."""
    if not values:
        return None
    if all(v in (0.0, 1.0) for v in values):
        low, high = wilson_interval(int(sum(values)), len(values))
        return Interval(round(low, 6), round(high, 6), "wilson")
    low, high = bootstrap_interval(values)
    return Interval(round(low, 6), round(high, 6), "bootstrap")


def sign_test_p(wins: int, losses: int) -> float:
    """Exact two-sided sign test (binomial, p = 1/2) of wins against losses.

    p = P(a split at least as uneven) under "either system is as likely to be better";
    1.0 when nothing differs. Exact for any n (integer arithmetic, then one division).
    """
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)


def paired_test(mine: Sequence[float], theirs: Sequence[float]) -> PairedTest:
    """Wins / losses / ties of `mine` over `theirs` (same examples, same order) and p."""
    if len(mine) != len(theirs):
        raise ValueError(f"paired scores differ in length: {len(mine)} vs {len(theirs)}")
    wins = losses = ties = 0
    for a, b in zip(mine, theirs, strict=True):
        if math.isclose(a, b, abs_tol=1e-9):
            ties += 1
        elif a > b:
            wins += 1
        else:
            losses += 1
    return PairedTest(wins, losses, ties, sign_test_p(wins, losses))


def clear_difference(test: PairedTest, mean_mine: float, mean_theirs: float) -> bool:
    """Two systems differ clearly on a metric: a significant paired test, or a gap of at
    least LARGE_GAP between the means over at least MIN_DECIDING examples."""
    if test.significant:
        return True
    return test.n >= MIN_DECIDING and abs(mean_mine - mean_theirs) >= LARGE_GAP


def format_p(p: float) -> str:
    """`p < 0.001`, `p = 0.03`, `p = 0.38` (two significant digits below 0.1)."""
    if p < 0.001:
        return "p < 0.001"
    text = f"{p:.3f}" if p < 0.01 else f"{p:.2g}" if p < 0.1 else f"{p:.2f}"
    if p < ALPHA <= float(text):
        return f"p < {ALPHA}"  # 0.0499 must not read as 0.05: the verdict called it real
    return f"p = {text}"
