"""Runs compared by outcome: on one test file, with 95 % intervals and a paired test.

Run B was trained after improving run A's data; whether B is really better shows on one
test file both were scored on (`tunedeck eval RUN --data FILE`), never on two sets side
by side: a run scored on another version of the file, or not at all, is refused with the
command that scores it, and so is a prompt pool (no reference answers). Nothing is
generated: the fine-tuned model's stored answers are re-scored under one primary metric
(the first run's, or the user's: engine.runs.compare.comparison_primary), on the examples
every run answered.

Each later run is set against the first, per example on the primary score: wins, losses,
ties and the exact two-sided sign test (engine.eval.stats), read as in an eval verdict:
"beats" / "is worse than" only when p < 0.05, else "too few examples to tell".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.core.errors import TunedeckError
from engine.core.layout import SET_FILE
from engine.data.primary import Primary
from engine.eval.options import TUNED
from engine.eval.sets import EvalDataError, load_eval_set, read_split, set_name_for
from engine.eval.stats import format_p, mean_interval, paired_test
from engine.eval.store import set_path, stored_sets
from engine.eval.summary import (
    build_scoring,
    load_summary,
    score_output,
    system_rows,
    with_interval,
)
from engine.runs.compare import comparison_primary

STANDARD = (("exact", "exact match"), ("json_valid", "valid JSON"), ("rouge_l", "ROUGE-L"))
"""Standard metrics shown beside the primary score: (per-example key, label)."""
Scores = dict[str, Any]
"""One example's metrics (engine.eval.metrics.score_example)."""


@dataclass(frozen=True)
class Measure:
    """The mean of a per-example score and its 95 % interval."""

    mean: float | None
    """None: no example has the score (valid JSON of a free-text task)."""
    low: float | None = None
    high: float | None = None
    n: int = 0
    """Examples the mean is over."""

    @classmethod
    def of(cls, values: Sequence[float]) -> Measure:
        interval = mean_interval(values)
        if interval is None:
            return cls(None)
        mean = round(sum(values) / len(values), 6)
        return cls(mean, interval.low, interval.high, len(values))

    def text(self) -> str:
        """`0.84 [0.74, 0.91]`, or `—` without a value."""
        if self.mean is None:
            return "—"
        ci = {"low": self.low, "high": self.high} if self.low is not None else None
        return with_interval({"primary": self.mean, "primary_ci": ci})


@dataclass(frozen=True)
class RunOutcome:
    """One run's scores on the compared examples."""

    id: str
    answered: int
    """Examples of the set the run's fine-tuned model answered (all compared or not)."""
    primary: Measure
    standard: dict[str, Measure]
    """STANDARD key -> its mean and interval."""


@dataclass(frozen=True)
class Versus:
    """A later run against the first, per example on the primary score."""

    run: str
    against: str
    wins: int
    """Examples where `run` scored higher than `against`."""
    losses: int
    ties: int
    p_value: float
    """Exact two-sided sign test on wins vs losses."""
    significant: bool


@dataclass(frozen=True)
class Outcome:
    """Two or more runs on one test file: scores with intervals and paired tests."""

    eval_set: str
    file: str
    """The test file's name (`support_tickets_test.jsonl`)."""
    total: int
    """Examples in the test file."""
    examples: int
    """Examples compared: the ones every run answered."""
    primary: dict[str, str]
    """`name`, `spec`, `why`, `of` (whose choice), as Comparison.primary."""
    runs: tuple[RunOutcome, ...]
    versus: tuple[Versus, ...]
    """Each later run against the first, in run order."""

    def primary_line(self) -> str:
        """`primary metric: category accuracy (run A's: the JSON key ...)`."""
        why = f": {self.primary['why']}" if self.primary.get("why") else ""
        return f"primary metric: {self.primary['name']} ({self.primary['of']}{why})"

    def coverage(self) -> str:
        """Which examples were compared: `` when all, else who answered fewer."""
        if self.examples == self.total:
            return ""
        fewer = [f"run {r.id} answered {r.answered}" for r in self.runs if r.answered < self.total]
        return (
            f"compared on the {self.examples} examples every run answered; "
            f"{self.total - self.examples} of {self.total} left out ({', '.join(fewer)})"
        )

    def sentences(self, names: Sequence[str] | None = None) -> list[str]:
        """One plain sentence per later run against the first.

        Args:
            names: what to call each run, in run order (default `run <id>`).
        """
        called = list(names) if names is not None else [f"run {r.id}" for r in self.runs]
        return [
            versus_sentence(
                v, self.runs[i + 1], self.runs[0], called[i + 1], called[0], self.primary["name"]
            )  # fmt: skip
            for i, v in enumerate(self.versus)
        ]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready data (`tunedeck compare --data FILE --json`)."""
        return {
            "eval_set": self.eval_set,
            "file": self.file,
            "total": self.total,
            "examples": self.examples,
            "primary": self.primary,
            "runs": [asdict(run) for run in self.runs],
            "versus": [asdict(v) for v in self.versus],
            "sentences": self.sentences(),
        }


def versus_sentence(
    v: Versus, later: RunOutcome, first: RunOutcome, name: str, first_name: str, metric: str
) -> str:
    """`B beats A on category accuracy: 0.84 [0.74, 0.91] vs 0.79 [...], 9 wins / 2 losses,
    p = 0.03` (or `is worse than`, `too few examples to tell`, `score the same`)."""
    if v.significant:
        better = "beats" if v.wins > v.losses else "is worse than"
        head = f"{name} {better} {first_name} on {metric}"
    elif v.wins == v.losses == 0:
        head = f"{name} and {first_name} score the same on every example's {metric}"
    else:
        head = f"too few examples to tell {name} from {first_name} on {metric}"
    win = "win" if v.wins == 1 else "wins"
    loss = "loss" if v.losses == 1 else "losses"
    counts = f"{v.wins} {win} / {v.losses} {loss}, {format_p(v.p_value)}"
    return f"{head}: {later.primary.text()} vs {first.primary.text()}, {counts}"


# ---------------------------------------------------------------------------
# Which sets the runs were scored on
# ---------------------------------------------------------------------------


def is_pool(run_dir: Path, eval_set: str) -> bool:
    """The set is a prompt pool (`"pool": true` in its set.json): no references."""
    try:
        info = json.loads((set_path(run_dir, eval_set) / SET_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("pool") is True


def tuned_scored(run_dir: Path, eval_set: str) -> bool:
    """The run's fine-tuned model was scored on the set (its summary has the system)."""
    summary = load_summary(run_dir, eval_set)
    systems = summary.get("systems") if summary else None
    return isinstance(systems, dict) and TUNED in systems


def shared_test_sets(run_dirs: Sequence[Path]) -> list[str]:
    """The test sets (not pools) every run's fine-tuned model was scored on, by name."""
    if not run_dirs:
        return []
    return [
        name
        for name in stored_sets(run_dirs[0])[1:]
        if all(tuned_scored(d, name) and not is_pool(d, name) for d in run_dirs)
    ]


def _versions(run_dir: Path, eval_set: str) -> list[str]:
    """Other scored sets of the run from a file of the same name (another version)."""
    stem = eval_set.rsplit("-", 1)[0]
    return [
        name
        for name in stored_sets(run_dir)[1:]
        if name != eval_set and name.rsplit("-", 1)[0] == stem and tuned_scored(run_dir, name)
    ]


def _not_scored(run_dir: Path, eval_set: str) -> str:
    """Why the run cannot be compared on the set ("" when it can)."""
    if tuned_scored(run_dir, eval_set) and system_rows(run_dir, TUNED, None, eval_set):
        return ""
    others = _versions(run_dir, eval_set)
    if others:
        return f"run {run_dir.name} only on another version of it ({others[-1]})"
    return f"run {run_dir.name} never was (by its fine-tuned model)"


def check_scored(run_dirs: Sequence[Path], eval_set: str, file: str, data: str) -> None:
    """Refuse a pool, and runs not scored on the set, naming each and how to score it."""
    if any(is_pool(d, eval_set) for d in run_dirs):
        raise TunedeckError(
            f"{file} is a prompt pool: a prompt pool has no reference answers to compare on",
            hint="compare on a test file whose examples end with the expected answer",
        )
    missing = [(d, why) for d in run_dirs if (why := _not_scored(d, eval_set))]
    if missing:
        raise TunedeckError(
            f"not every run was scored on {file} (runs are compared on one version of one "
            "test file): " + "; ".join(why for _d, why in missing),
            hint="score them on this file first (answers already generated are reused): "
            + "; ".join(f"tunedeck eval {d.name} --data {data}" for d, _why in missing),
        )


# ---------------------------------------------------------------------------
# The outcome
# ---------------------------------------------------------------------------


def compare_outcome(run_dirs: Sequence[Path], data: str, primary: str | None = None) -> Outcome:
    """Compare runs on the test file `data` (a path; a file gone since is found again
    by its path among the runs' stored sets).

    Args:
        primary: the metric to compare on (`label:KEY`, `fields`, `exact`, `rouge`);
            None or `auto`: the first run's.

    Raises:
        TunedeckError: fewer than two runs, a run not scored on this version of the file,
            a prompt pool, an unreadable file no run was scored on, or a metric that does
            not fit a run's data.
    """
    unique = _two_or_more(run_dirs)
    names, errors = {}, []
    for run_dir in unique:
        try:
            names[run_dir] = set_name_for(run_dir, data)
        except EvalDataError as exc:
            errors.append(exc)
    if not names:
        raise errors[0]
    eval_set = next(iter(names.values()))  # the file's name, or the first run's stored set
    file = Path(data).name
    check_scored(unique, eval_set, file, data)
    return _outcome(unique, eval_set, file, primary)


def outcome_on_set(run_dirs: Sequence[Path], eval_set: str, primary: str | None = None) -> Outcome:
    """compare_outcome by the set's name (a set every run was scored on)."""
    unique = _two_or_more(run_dirs)
    found = load_eval_set(unique[0], eval_set)
    file = Path(found.source).name if found.source else eval_set
    check_scored(unique, eval_set, file, found.source or file)
    return _outcome(unique, eval_set, file, primary)


def _two_or_more(run_dirs: Sequence[Path]) -> list[Path]:
    unique = list(dict.fromkeys(run_dirs))
    if len(unique) < 2:
        raise TunedeckError(
            "a comparison needs two or more different runs",
            hint="name two or more runs (`tunedeck runs` lists them)",
        )
    return unique


def _outcome(run_dirs: list[Path], eval_set: str, file: str, spelling: str | None) -> Outcome:
    choice, of = comparison_primary(run_dirs, spelling)
    scored = {d: _rescored(d, eval_set, choice) for d in run_dirs}
    common = sorted(set.intersection(*(set(by_index) for by_index in scored.values())))
    scores = {d: [by_index[i] for i in common] for d, by_index in scored.items()}
    runs = tuple(_run_outcome(d.name, len(scored[d]), scores[d]) for d in run_dirs)
    first = [float(s["primary"]) for s in scores[run_dirs[0]]]
    versus = []
    for run_dir in run_dirs[1:]:
        test = paired_test([float(s["primary"]) for s in scores[run_dir]], first)
        versus.append(Versus(run_dir.name, run_dirs[0].name, test.wins, test.losses,
                             test.ties, test.p_value, test.significant))  # fmt: skip
    total = len(load_eval_set(run_dirs[0], eval_set).examples)
    note = _primary_note(run_dirs[0], eval_set, choice, of)
    return Outcome(eval_set, file, total, len(common), note, runs, tuple(versus))


def _rescored(run_dir: Path, eval_set: str, choice: Primary | None) -> dict[int, Scores]:
    """Example index -> metrics of the fine-tuned answers, scored under `choice` (None:
    as stored)."""
    rows = system_rows(run_dir, TUNED, None, eval_set)
    if choice is not None and any(row.get("scored_as") != choice.spec for row in rows):
        references = [e.answer for e in load_eval_set(run_dir, eval_set).examples]
        ctx, index = build_scoring(read_split(run_dir, "train"), references, choice)
        for row in rows:
            row["metrics"] = score_output(row["output"], row["reference"], ctx, index)
    return {
        row["index"]: row["metrics"]
        for row in rows
        if isinstance(row.get("metrics"), dict)
        and isinstance(row["metrics"].get("primary"), int | float)
    }


def _run_outcome(run_id: str, answered: int, scores: list[Scores]) -> RunOutcome:
    primary = Measure.of([float(s["primary"]) for s in scores])
    standard = {
        key: Measure.of([float(s[key]) for s in scores if isinstance(s.get(key), int | float)])
        for key, _label in STANDARD
    }
    return RunOutcome(run_id, answered, primary, standard)


def _primary_note(run_dir: Path, eval_set: str, choice: Primary | None, of: str) -> dict[str, str]:
    if choice is not None:
        return {"name": choice.name, "spec": choice.spec, "why": choice.why, "of": of}
    stored = (load_summary(run_dir, eval_set) or {}).get("primary") or {}
    return {"name": str(stored.get("name") or "primary score"), "spec": str(stored.get("spec", "")),
            "why": str(stored.get("why", "")), "of": f"{of}, as stored"}  # fmt: skip
