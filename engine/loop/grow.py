"""`tunedeck data add`: the next run's data, grown from a reviewed set.

The new file is the run's training data as frozen in the run (`data/train.jsonl`), then
each example of the reviewed set whose fine-tuned answer was accepted, or corrected, with
that answer as the assistant turn and its provenance in `meta` (run, set, source file and
line, index, accepted or corrected). Readers keep `meta` beside the conversation and never
train on it.

Nothing held out leaks: a set the run is scored on (its validation split, a test file) is
refused as a whole, and a pool prompt that repeats (exactly or nearly) an example of the
validation split or of a test file the run was scored on is refused with that reason. An
example already in the data (the same conversation and answer) is a no-op, so adding twice
changes nothing. The output is a new file, written atomically, and never one of the inputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.core.errors import TunedeckError
from engine.core.files import write_text_atomic
from engine.data.formats import Example, Message
from engine.data.near_duplicates import exact_key
from engine.data.pool import prompt_overlaps
from engine.eval.review_marks import VERDICTS, load_marks
from engine.eval.sets import EvalSet, load_eval_set, read_split, set_name_for, stored_test_set
from engine.eval.store import VALIDATION, stored_sets


class GrowError(TunedeckError):
    """Data that cannot be grown as asked (nothing reviewed, an output that exists)."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one reviewed example."""

    index: int
    line: int
    """Its line in the reviewed file."""
    how: str
    """accepted / corrected (added), or why it was not added."""


@dataclass(frozen=True)
class GrowResult:
    """The file written and what went into it."""

    out: Path
    kept: int
    """The run's training examples, first in the file."""
    added: list[Outcome] = field(default_factory=list)
    present: list[Outcome] = field(default_factory=list)
    """Already in the data: a no-op."""
    refused: list[Outcome] = field(default_factory=list)
    """Held-out examples: adding them would leak into training."""
    lint: str = ""
    """The lint of the written file, in one line (lint_line)."""

    def lines(self) -> list[str]:
        """What `tunedeck data add` prints about it."""
        accepted = sum(o.how == "accepted" for o in self.added)
        text = [
            f"wrote {self.out}: {self.kept} training examples of the run + {len(self.added)} "
            f"added ({accepted} accepted, {len(self.added) - accepted} corrected)"
        ]
        if self.present:
            text.append(f"{len(self.present)} already in the data (nothing to add)")
        text += [f"refused #{o.index + 1} (line {o.line}): {o.how}" for o in self.refused]
        return text + ([self.lint] if self.lint else [])


def lint_line(path: Path) -> str:
    """The lint of a written dataset in one line: usable examples, errors, warnings."""
    from engine.data.lint.linter import lint_file

    report = lint_file(path)
    errors, warnings = len(report.errors), len(report.warnings)
    return (f"lint: {report.count} usable examples, {errors} error(s), {warnings} warning(s)"
            f"{' (tunedeck lint FILE lists them)' if errors else ''}")  # fmt: skip


def reviewed_answers(run_dir: Path, eval_set: str) -> list[tuple[int, str, str]]:
    """(index, accepted | corrected, answer) of a set's examples, in index order."""
    state = load_marks(run_dir, eval_set)
    return [
        (index, s["verdict"], s["answer"])
        for index, s in sorted(state.items())
        if s.get("verdict") in VERDICTS and isinstance(s.get("answer"), str) and s["answer"]
    ]


def held_out_sets(run_dir: Path) -> dict[str, list[Example]]:
    """The examples the run is scored on: its validation split and every test file."""
    found = {"the validation split": read_split(run_dir, "val")}
    for name in stored_sets(run_dir)[1:]:
        test = stored_test_set(run_dir, name)
        if test is not None and not test.pool:
            found[test.title] = test.examples
    return found


def _refusal(eval_set: EvalSet) -> str | None:
    """Why a whole set may not be trained on (None: it is a pool)."""
    if eval_set.name == VALIDATION:
        return "the run's validation split: training on it would leak it (it chose the adapter)"
    if not eval_set.pool:
        return f"{eval_set.title} scores the run: training on it would leak the test"
    return None


def grow_data(run_dir: Path, data: str | None, out: Path, overwrite: bool = False) -> GrowResult:
    """Write the run's training data plus the reviewed set's accepted and corrected answers.

    Args:
        data: the reviewed file (a prompt pool, evaluated with `tunedeck eval RUN --data`);
            None: the validation split (refused: it is held out).
        out: the new file (JSONL); refused when it exists unless `overwrite`.

    Raises:
        GrowError: nothing accepted or corrected, `out` exists or is an input.
        EvalDataError: the file was never evaluated in the run.
    """
    return grow_set(run_dir, set_name_for(run_dir, data), out, overwrite)


def grow_set(run_dir: Path, name: str, out: Path, overwrite: bool = False) -> GrowResult:
    """grow_data for an eval set named as stored in the run (the Evaluate step's set)."""
    eval_set = load_eval_set(run_dir, name)
    data = eval_set.source
    reviewed = reviewed_answers(run_dir, name)
    if not reviewed:
        raise GrowError(
            f"nothing to add: no answer in {eval_set.title} is accepted or corrected",
            hint="review the answers first: y accepts, c corrects (Evaluate step), or "
            "`tunedeck review RUN --data FILE --accept N` / `--correct N --answer TEXT`",
        )
    _check_out(run_dir, out, overwrite, data)
    train = read_split(run_dir, "train")
    seen = {exact_key(example) for example in train}
    result = GrowResult(out, len(train))
    refusal = _refusal(eval_set)
    leaks = _leaks(run_dir, eval_set) if refusal is None else {}
    lines: list[dict[str, Any]] = [example.to_dict() for example in train]
    for index, how, answer in reviewed:
        if index >= len(eval_set.examples):
            continue
        source = eval_set.examples[index]
        line = eval_set.lines[index]
        reason = refusal or leaks.get(source.line)
        if reason:
            result.refused.append(Outcome(index, line, reason))
            continue
        example = _with_answer(source, answer, _meta(run_dir, eval_set, index, line, how))
        key = exact_key(example)
        if key in seen:
            result.present.append(Outcome(index, line, "already in the data"))
            continue
        seen.add(key)
        lines.append(example.to_dict())
        result.added.append(Outcome(index, line, how))
    _write(out, lines)
    return replace(result, lint=lint_line(out))


def _leaks(run_dir: Path, eval_set: EvalSet) -> dict[int, str]:
    """Pool line -> why it would leak a held-out example into training."""
    found: dict[int, str] = {}
    for title, examples in held_out_sets(run_dir).items():
        for line, their_line, how in prompt_overlaps(eval_set.examples, examples):
            found.setdefault(
                line, f"{how} line {their_line} of {title}: it would leak into training"
            )
    return found


def _with_answer(source: Example, answer: str, meta: dict[str, Any]) -> Example:
    """The pool example (its prompt turns) with `answer` as the assistant turn."""
    return Example((*source.messages, Message("assistant", answer)), source.line, meta)


def _meta(run_dir: Path, eval_set: EvalSet, index: int, line: int, how: str) -> dict[str, Any]:
    return {
        "run": run_dir.name,
        "set": eval_set.name,
        "source": eval_set.source,
        "line": line,
        "index": index,
        "how": how,
    }


def _check_out(run_dir: Path, out: Path, overwrite: bool, data: str | None) -> None:
    inputs = [Path(data).expanduser().resolve()] if data else []
    if out.resolve() in inputs or run_dir.resolve() in out.resolve().parents:
        raise GrowError(
            f"{out} is an input (the reviewed file, or inside the run)",
            hint="write the grown data to a new file: runs and your files stay as they are",
        )
    if out.exists() and not overwrite:
        raise GrowError(f"{out} exists", hint="choose a new name, or --force to replace it")


def _write(out: Path, lines: list[dict[str, Any]]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
