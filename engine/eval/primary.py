"""The run's primary metric, decided once and kept in `eval/primary.json`.

The first evaluation (or review, or comparison) of a run decides it from the run's frozen
training split (engine.data.primary.decide_for_examples) and stores it; every later use,
on any eval set, reads it back, so the metric never flips with the set being scored. A
user's choice (`tunedeck eval --primary fields`, the eval settings) wins and is stored
the same way; `auto` goes back to the data's decision.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from engine.core.events import write_json_atomic
from engine.core.layout import EVAL_DIR, PRIMARY_FILE
from engine.data.labels import LabelTally, parse_json_object
from engine.data.primary import (
    AUTO,
    SPELLINGS,
    Primary,
    check_fits,
    decide_for_examples,
    parse_primary,
)
from engine.eval.sets import read_split


def primary_path(run_dir: Path) -> Path:
    """`<run>/eval/primary.json` (not created)."""
    return run_dir / EVAL_DIR / PRIMARY_FILE


def stored_primary(run_dir: Path) -> Primary | None:
    """The primary metric stored with the run, or None before its first use."""
    try:
        data = json.loads(primary_path(run_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Primary.from_json(data)


def run_primary(run_dir: Path, choice: str | None = None) -> Primary | None:
    """The run's primary metric, stored on first use (None: a run without training
    examples, nothing to decide from; the scored set's references decide, unstored).

    Args:
        choice: a user's spelling (`label:KEY`, `fields`, `exact`, `rouge`) to store
            instead, or `auto` for the data's decision; None: the stored one.

    Raises:
        PrimaryError: an unknown spelling, or a label key the training answers lack.
    """
    stored = stored_primary(run_dir)
    if choice is None and stored is not None:
        return stored
    if choice is not None and choice.strip().lower() != AUTO:
        primary = parse_primary(choice)
        check_fits(primary, [e.answer for e in read_split(run_dir, "train")])
    else:
        train = read_split(run_dir, "train")
        if not train:
            return None
        primary = decide_for_examples(train)
    if primary != stored:
        (run_dir / EVAL_DIR).mkdir(exist_ok=True)
        write_json_atomic(primary_path(run_dir), primary.to_json())
    return primary


@dataclass(frozen=True)
class PrimaryOptions:
    """What a settings form offers for a run's primary metric."""

    current: Primary | None
    """The metric the run scores by now (None: no training data to decide from)."""
    decided: Primary | None
    """What the training data decides (`auto`)."""
    label_keys: tuple[str, ...]
    """Keys whose values could be labels (few short values; "" the whole answer)."""

    def choices(self) -> list[tuple[str, str]]:
        """(title, spelling) pairs, `auto` first: the data's decision by name."""
        decided = self.decided.name if self.decided is not None else "from the data"
        found = [("auto: " + decided, AUTO)]
        for key in self.label_keys:
            spec = Primary("label", key).spec
            found.append((f"{Primary('label', key).name} ({spec})", spec))
        found += [(f"{Primary(kind).name} ({spelling})", spelling)
                  for spelling, kind in SPELLINGS.items()]  # fmt: skip
        return found


def primary_options(run_dir: Path) -> PrimaryOptions:
    """The run's metric now, the data's decision, and the label keys a user may pick."""
    train = read_split(run_dir, "train")
    decided = decide_for_examples(train) if train else None
    tally = LabelTally()
    for example in train:
        tally.add(example.answer, parse_json_object(example.answer))
    keys = tuple(dict.fromkeys(scheme.key for scheme in tally.schemes()))
    return PrimaryOptions(stored_primary(run_dir) or decided, decided, keys)
