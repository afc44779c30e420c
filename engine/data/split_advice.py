"""Is the validation set large enough to tell models apart? If not, what to hold out instead.

With 14 validation examples one example is 7 points of accuracy, and the 95 % interval of
an accuracy near 0.5 spans about ±25 points: a fine-tuned model and the base model can
differ a lot and still not be told apart. At about 30 examples (±17 points) the evidence
starts to count. `validation_advice` says so when a split leaves fewer, and names the
smallest fraction, in the + / - steps of the Split step, that would reach MIN_VAL_EXAMPLES
without going past the recommended share (engine.data.split.RECOMMENDED). When even that share
is not enough, the way out is a separate test file, scored after training.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.data.split import RECOMMENDED, val_target

MIN_VAL_EXAMPLES = 30
"""Validation examples below which a comparison of models is mostly noise."""
FRACTION_STEP = 0.05
"""Suggested fractions are multiples of this (the Split step's + / - step)."""
MAX_SUGGESTED = RECOMMENDED[1]
"""The largest fraction suggested: beyond it the split warns of too little training data."""
TEST_FILE_HINT = "tunedeck eval RUN --data FILE"


@dataclass(frozen=True)
class ValidationAdvice:
    """Too few validation examples, and the fraction (if any) that would give enough."""

    val_count: int
    """Validation examples the split gives now."""
    fraction: float | None
    """The suggested validation fraction (None: no larger fraction is worth suggesting)."""
    fraction_count: int | None
    """Validation examples that fraction would give."""
    from_file: bool = False
    """The validation set is a file of the user's, not a share of the dataset."""

    @property
    def enough(self) -> bool:
        """The suggested fraction reaches MIN_VAL_EXAMPLES."""
        return self.fraction_count is not None and self.fraction_count >= MIN_VAL_EXAMPLES

    @property
    def message(self) -> str:
        """One line for the Split step and the CLI."""
        head = f"only {self.val_count} validation examples: too few to tell models apart; "
        test_file = (
            f"score a separate test file of {MIN_VAL_EXAMPLES}+ examples after training "
            f"({TEST_FILE_HINT})"
        )
        if self.fraction is None or self.fraction_count is None:
            more = "add examples to the validation file, or " if self.from_file else ""
            return head + more + test_file
        if self.enough:
            return (
                f"{head}hold out {self.fraction:g} ({self.fraction_count} examples), or {test_file}"
            )
        return (
            f"{head}hold out {self.fraction:g} ({self.fraction_count} examples, still under "
            f"{MIN_VAL_EXAMPLES}) and {test_file}"
        )


def validation_advice(
    total: int, val_count: int, val_fraction: float | None
) -> ValidationAdvice | None:
    """Advice for a split of `total` examples that holds out `val_count`; None: enough.

    Args:
        total: usable examples of the dataset (training plus validation).
        val_count: validation examples of the split.
        val_fraction: the fraction asked for, or None when the validation set is a file.

    No advice for a split without validation examples: the split's own warning covers it.
    """
    if val_count >= MIN_VAL_EXAMPLES or val_count == 0:
        return None
    if val_fraction is None:
        return ValidationAdvice(val_count, None, None, from_file=True)
    candidates = [
        fraction
        for k in range(1, round(MAX_SUGGESTED / FRACTION_STEP) + 1)
        if (fraction := round(k * FRACTION_STEP, 4)) > val_fraction + 1e-9
    ]
    if not candidates:
        return ValidationAdvice(val_count, None, None)
    for fraction in candidates:
        count = val_target(total, fraction)
        if count >= MIN_VAL_EXAMPLES:
            return ValidationAdvice(val_count, fraction, count)
    return ValidationAdvice(val_count, MAX_SUGGESTED, val_target(total, MAX_SUGGESTED))
