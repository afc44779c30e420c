"""Human review of an evaluation: the table the TUI shows, marks, blind A/B, export.

The TUI's eval table calls:

    table = load_table(run_dir)                  # EvalTable: rows, systems, summary
    rows = filter_rows(table.rows, "regressions", search="invoice")
    rows = sort_rows(rows, "rouge_l", system="tuned", descending=True)
    set_mark(run_dir, row.index, "good", note="polite and right")   # saved at once
    pair = ab_pair(row, table.against, rng)     # shuffled sides, system names hidden
    record_preference(run_dir, pair, "left")
    ab_stats(run_dir, table.against)            # human win rate of fine-tuned
    word_diff(row.reference, row.tuned)         # [("equal", "..."), ("insert", ...)]
    export_review(run_dir, fmt="csv")           # eval/review.csv

Marks and preferences are stored by engine.eval.review_marks (re-exported here): appended and
fsynced one line per action, so a crash loses at most the keystroke in flight.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from engine.eval.options import BASE_FEW, BASE_SYSTEMS, BASE_ZERO, SYSTEMS, TUNED
from engine.eval.review_marks import (
    MARKS,
    AbPair,
    AbStats,
    Mark,
    Preference,
    ab_stats,
    load_marks,
    load_preferences,
    record_preference,
    review_summary,
    set_mark,
)
from engine.eval.store import VALIDATION, set_dir, set_path
from engine.eval.summary import load_summary, system_rows

__all__ = [
    "FILTERS",
    "MARKS",
    "AbPair",
    "AbStats",
    "EvalRow",
    "EvalTable",
    "Filter",
    "Mark",
    "Preference",
    "ab_pair",
    "ab_queue",
    "ab_stats",
    "export_review",
    "filter_rows",
    "load_marks",
    "load_preferences",
    "load_table",
    "record_preference",
    "review_summary",
    "set_mark",
    "sort_rows",
    "word_diff",
]

Filter = Literal["all", "regressions", "failures", "unreviewed"]
FILTERS: tuple[Filter, ...] = ("all", "regressions", "failures", "unreviewed")
SHORT_PROMPT = 60
"""Characters of the prompt shown in the table's prompt column."""


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalRow:
    """One held-out example with every system's answer, scores, mark and judge reason."""

    index: int
    """Position in the eval set: the run's validation split or a test file (the key of
    marks and preferences, which are kept per set)."""
    line: int
    """Line of the example in the user's source file."""
    prompt_short: str
    prompt: str
    reference: str
    base: str | None
    """Base model, zero-shot (None: not evaluated)."""
    few: str | None
    """Base model, few-shot."""
    tuned: str | None
    """Fine-tuned adapter."""
    outputs: dict[str, str]
    """Every evaluated system's answer, checkpoints (`tuned@<step>`) included."""
    scores: dict[str, dict[str, Any]]
    """Per system: its per-example metrics (exact, f1, rouge_l, primary, label, ...)."""
    mark: Mark | None
    note: str
    judge_winner: str | None
    """`tuned`, the base system's name or `tie` (None: not judged)."""
    judge_reason: str | None
    messages: list[dict[str, str]]
    """The conversation as prompted (zero-shot), for the detail view."""
    verdict: str | None = None
    """`accepted` / `corrected` (engine.eval.review_marks), None: not yet."""
    answer: str | None = None
    """The accepted or corrected answer as saved."""
    fixed_reference: str | None = None
    """The right reference, where the review found the set's own wrong."""

    def score(self, metric: str, system: str = TUNED) -> float | None:
        """One metric of one system as a number (booleans as 0/1), None if absent."""
        value = self.scores.get(system, {}).get(metric)
        return float(value) if isinstance(value, int | float) else None

    @property
    def best_base(self) -> float | None:
        """The better base system's primary score on this example."""
        values = [v for s in BASE_SYSTEMS if (v := self.score("primary", s)) is not None]
        return max(values) if values else None

    @property
    def regression(self) -> bool:
        """A base system scored better than the fine-tuned model here."""
        tuned, base = self.score("primary"), self.best_base
        return tuned is not None and base is not None and base > tuned + 1e-9

    @property
    def failure(self) -> bool:
        """The fine-tuned answer is wrong or invalid (engine.eval.metrics.is_failure)."""
        return bool(self.scores.get(TUNED, {}).get("failed"))


@dataclass(frozen=True)
class EvalTable:
    """Everything the eval screen shows."""

    run_dir: Path
    rows: list[EvalRow]
    systems: list[str]
    """Systems with stored answers, in display order."""
    primary_name: str
    against: str
    """The base system that A/B and the verdict compare with."""
    summary: dict[str, Any] | None
    eval_set: str = VALIDATION
    """The eval set shown (engine.eval.store): its marks and A/B choices go with it."""

    @property
    def set_title(self) -> str:
        """`validation split` or `test file support_tickets_test.jsonl`."""
        title = ((self.summary or {}).get("eval_set") or {}).get("title")
        if title:
            return str(title)
        return "validation split" if self.eval_set == VALIDATION else f"test set {self.eval_set}"

    @property
    def set_description(self) -> str:
        """`validation split, 14 examples` or `test file x.jsonl, 70 examples`."""
        described = ((self.summary or {}).get("eval_set") or {}).get("description")
        return str(described) if described else f"{self.set_title}, {len(self.rows)} examples"


def _ordered_systems(run_dir: Path, eval_set: str = VALIDATION) -> list[str]:
    present = {p.stem for p in set_path(run_dir, eval_set).glob("*.jsonl")}
    checkpoints = sorted(
        (s for s in present if s.startswith(f"{TUNED}@") and s.split("@")[1].isdigit()),
        key=lambda s: int(s.split("@")[1]),
    )
    return [s for s in SYSTEMS if s in present] + checkpoints


def load_table(run_dir: Path, eval_set: str = VALIDATION) -> EvalTable:
    """The eval table of one eval set of a run: stored rows, marks and judge verdicts."""
    summary = load_summary(run_dir, eval_set)
    limit = summary.get("examples") if summary else None
    systems = _ordered_systems(run_dir, eval_set)
    per_system = {
        s: {r["index"]: r for r in system_rows(run_dir, s, limit, eval_set)} for s in systems
    }
    against = (summary or {}).get("against") or (BASE_FEW if BASE_FEW in systems else BASE_ZERO)
    marks = load_marks(run_dir, eval_set)
    judged = _judge_by_index(run_dir, against, eval_set)
    indices = sorted({i for rows in per_system.values() for i in rows})
    table_rows = []
    for index in indices:
        stored = {s: rows[index] for s, rows in per_system.items() if index in rows}
        first = next(iter(stored.values()))
        outputs = {s: r["output"] for s, r in stored.items()}
        mark = marks.get(index, {})
        verdict = judged.get(index, {})
        prompt = first.get("prompt", "")
        table_rows.append(
            EvalRow(
                index=index,
                line=int(first.get("line", index + 1)),
                prompt_short=_shorten(prompt),
                prompt=prompt,
                reference=first.get("reference", ""),
                base=outputs.get(BASE_ZERO),
                few=outputs.get(BASE_FEW),
                tuned=outputs.get(TUNED),
                outputs=outputs,
                scores={s: r.get("metrics", {}) for s, r in stored.items()},
                mark=mark.get("mark"),
                note=mark.get("note", ""),
                judge_winner=verdict.get("winner"),
                judge_reason=verdict.get("reason"),
                messages=first.get("messages", []),
                verdict=mark.get("verdict"),
                answer=mark.get("answer"),
                fixed_reference=mark.get("reference"),
            )
        )
    primary = (summary or {}).get("primary", {}).get("name", "primary score")
    return EvalTable(run_dir, table_rows, systems, primary, against, summary, eval_set)


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SHORT_PROMPT else flat[: SHORT_PROMPT - 1] + "…"


def _judge_by_index(run_dir: Path, against: str, eval_set: str) -> dict[int, dict[str, Any]]:
    from engine.eval.judge.judging import judge_rows

    out = {}
    for row in judge_rows(run_dir, against, eval_set=eval_set):
        reasons = [
            f"fine-tuned as {'A' if call.get('a') == TUNED else 'B'}: "
            f"{call.get('verdict') or 'no verdict'}. {call.get('reason', '')}".strip()
            for call in row.get("calls", [])
        ]
        out[row["index"]] = {"winner": row.get("winner"), "reason": "\n".join(reasons)}
    return out


def filter_rows(rows: Sequence[EvalRow], kind: Filter = "all", search: str = "") -> list[EvalRow]:
    """Rows of one filter whose texts or note contain `search` (case-insensitive)."""
    tests = {
        "all": lambda r: True,
        "regressions": lambda r: r.regression,
        "failures": lambda r: r.failure,
        "unreviewed": lambda r: r.mark is None,
    }
    if kind not in tests:
        raise ValueError(f"unknown filter {kind!r}; filters are {FILTERS}")
    needle = search.casefold().strip()

    def found(row: EvalRow) -> bool:
        texts = [row.prompt, row.reference, row.note, *row.outputs.values()]
        return not needle or any(needle in text.casefold() for text in texts)

    return [row for row in rows if tests[kind](row) and found(row)]


def sort_rows(
    rows: Sequence[EvalRow], key: str = "index", system: str = TUNED, descending: bool = False
) -> list[EvalRow]:
    """Rows ordered by one value, rows without it last in either direction.

    Args:
        key: `index`, `mark`, `delta` (fine-tuned minus the better base's primary score),
            or a metric of `system`: primary, rouge_l, f1, exact, json_valid, label_correct...
    """

    def value(row: EvalRow) -> float | None:
        if key == "index":
            return float(row.index)
        if key == "mark":
            return float(MARKS.index(row.mark)) if row.mark else None
        if key == "delta":
            tuned, base = row.score("primary"), row.best_base
            return None if tuned is None or base is None else tuned - base
        return row.score(key, system)

    present = [r for r in rows if value(r) is not None]
    missing = [r for r in rows if value(r) is None]
    present.sort(key=lambda r: (value(r) or 0.0, r.index), reverse=descending)
    return present + missing


# ---------------------------------------------------------------------------
# Blind A/B pairs (storage and statistics: engine.eval.review_marks)
# ---------------------------------------------------------------------------


def ab_pair(row: EvalRow, against: str, rng: random.Random) -> AbPair | None:
    """The fine-tuned and the `against` answer of a row, sides drawn by `rng`."""
    if TUNED not in row.outputs or against not in row.outputs:
        return None
    left, right = (TUNED, against) if rng.random() < 0.5 else (against, TUNED)
    return AbPair(row.index, left, right, row.outputs[left], row.outputs[right])


def ab_queue(
    table: EvalTable, seed: int | None = None, include_rated: bool = False
) -> list[AbPair]:
    """Pairs for a blind A/B session: examples in random order, sides drawn per pair.

    Examples already rated for this pair of systems are left out unless `include_rated`.
    """
    rng = random.Random(seed)
    systems = frozenset((TUNED, table.against))
    prefs = load_preferences(table.run_dir, table.eval_set)
    rated = {index for index, pair in prefs if pair == systems}
    rows = [r for r in table.rows if include_rated or r.index not in rated]
    rng.shuffle(rows)
    return [pair for r in rows if (pair := ab_pair(r, table.against, rng)) is not None]


DiffOp = Literal["equal", "delete", "insert"]


def word_diff(reference: str, output: str) -> list[tuple[DiffOp, str]]:
    """Word-level diff from the reference to an answer, for the detail view.

    Words are whitespace-separated; `delete` is text only in the reference, `insert` only
    in the answer; consecutive words of one kind are joined with single spaces.
    """
    import difflib

    a, b = reference.split(), output.split()
    ops: list[tuple[DiffOp, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            ops.append(("equal", " ".join(a[i1:i2])))
            continue
        if i2 > i1:
            ops.append(("delete", " ".join(a[i1:i2])))
        if j2 > j1:
            ops.append(("insert", " ".join(b[j1:j2])))
    return ops


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------

_METRICS = ("primary", "exact", "f1", "rouge_l", "json_valid", "label", "failed")


def export_review(
    run_dir: Path,
    path: Path | None = None,
    fmt: Literal["csv", "jsonl"] = "csv",
    eval_set: str = VALIDATION,
) -> Path:
    """Write the table with marks, notes and judge verdicts as CSV or JSONL; returns the path.

    CSV has one column per system answer and per system metric (`tuned_rouge_l`, ...);
    JSONL has one object per example with everything the table holds.
    """
    table = load_table(run_dir, eval_set)
    path = path or set_dir(run_dir, eval_set) / f"review.{fmt}"
    if fmt == "jsonl":
        from engine.eval.store import rewrite_jsonl

        rewrite_jsonl(path, ({**asdict(r), "regression": r.regression} for r in table.rows))
        return path
    if fmt != "csv":
        raise ValueError(f"export format must be csv or jsonl, not {fmt!r}")
    header = ["index", "line", "prompt", "reference", *table.systems]
    header += [f"{s}_{m}" for s in table.systems for m in _METRICS]
    header += ["regression", "mark", "note", "judge_winner", "judge_reason"]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for r in table.rows:
            cells: list[Any] = [r.index, r.line, r.prompt, r.reference]
            cells += [r.outputs.get(s, "") for s in table.systems]
            cells += [r.scores.get(s, {}).get(m, "") for s in table.systems for m in _METRICS]
            cells += [
                r.regression,
                r.mark or "",
                r.note,
                r.judge_winner or "",
                r.judge_reason or "",
            ]
            writer.writerow(cells)
    return path
