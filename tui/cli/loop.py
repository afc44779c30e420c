"""`tunedeck review | data add | data fix`: the loop after an evaluation, scriptable.

Review an eval set's answers (accept, correct, mark, note, fix a wrong reference, or a
JSONL of such actions), then grow the next run's data from the accepted and corrected
answers (`data add`) or write a corrected copy of a source file (`data fix`). The engine
does the work (engine.loop); these handlers parse, print and return the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `review` and `data` to the CLI."""
    review = subparsers.add_parser(
        "review",
        help="review an evaluation's answers: accept, correct, mark, note, fix a reference",
        description=(
            "Review the answers of an evaluated set (the validation split, or --data FILE: "
            "a test file or a prompt pool). N is the example's number (#) as the review "
            "table and --json show it, from 1. Each action is saved at once, like a key in "
            "the Evaluate step; with no action, the review state is listed."
        ),
    )
    review.add_argument("run", metavar="RUN", help="run id (or a unique prefix of it)")
    review.add_argument("--data", metavar="FILE", help="the evaluated file (default: validation)")
    review.add_argument(
        "--accept",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="accept the fine-tuned answer of example N as right",
    )
    review.add_argument("--correct", type=int, metavar="N", help="correct example N's answer")
    review.add_argument(
        "--fix-reference",
        type=int,
        metavar="N",
        help="example N's reference is wrong: --answer is the right one",
    )
    review.add_argument(
        "--answer", metavar="TEXT", help="the answer for --correct / --fix-reference"
    )
    review.add_argument(
        "--clear",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="undo the accept or correction of example N",
    )
    review.add_argument(
        "--mark",
        nargs=2,
        action="append",
        default=[],
        metavar=("N", "MARK"),
        help="mark example N good, bad, skip (or none)",
    )
    review.add_argument(
        "--note",
        nargs=2,
        action="append",
        default=[],
        metavar=("N", "TEXT"),
        help="note on example N",
    )
    review.add_argument(
        "--import",
        dest="import_file",
        metavar="FILE",
        help='JSONL of {"index": N, "accept": true | "answer" | "mark" | "note" '
        '| "reference": ...}',
    )
    review.add_argument("--json", action="store_true", help="list the review state as JSON")
    review.set_defaults(handler=run_review)

    data = subparsers.add_parser("data", help="new dataset files from a review (data add, fix)")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        help="the run's training data + the accepted and corrected answers of a reviewed pool",
        description=(
            "Write a new dataset: the run's training data as frozen in the run, then every "
            "accepted or corrected answer of the reviewed file (a prompt pool evaluated with "
            "`tunedeck eval RUN --data FILE`), each with its provenance in `meta`. Held-out "
            "examples (the validation split, a test file the run was scored on, pool prompts "
            "that repeat them) are refused; an example already in the data is not added "
            "twice. Lint runs on the result. Train on it with `tunedeck train --data OUT "
            "--like RUN`."
        ),
    )
    add.add_argument("run", metavar="RUN", help="run id (or a unique prefix of it)")
    add.add_argument("--data", metavar="FILE", required=True, help="the reviewed prompt pool")
    add.add_argument("--out", metavar="FILE", required=True, help="the new dataset (JSONL)")
    add.add_argument("--force", action="store_true", help="replace --out if it exists")
    add.set_defaults(handler=run_data_add)
    fix = actions.add_parser(
        "fix",
        help="a corrected copy of a source file where the review fixed references",
        description=(
            "Write a copy of the source file of SET (validation, or a test file) with the "
            "references the review marked wrong replaced, and nothing else changed. Train "
            "on it with `tunedeck train --data OUT --like RUN`: every example keeps the "
            "side of the split it was on."
        ),
    )
    fix.add_argument("run", metavar="RUN", help="run id (or a unique prefix of it)")
    fix.add_argument(
        "--set",
        dest="eval_set",
        default="validation",
        metavar="SET",
        help="validation (default), or the test file / its set name",
    )
    fix.add_argument("--out", metavar="FILE", required=True, help="the corrected copy")
    fix.add_argument("--force", action="store_true", help="replace --out if it exists")
    fix.set_defaults(handler=run_data_fix)


def _actions(args: argparse.Namespace) -> list:
    from engine.core.errors import TunedeckError
    from engine.loop.review import Action, parse_actions

    actions = [Action(n, "accept", True) for n in args.accept]
    actions += [Action(n, "clear") for n in args.clear]
    for flag, kind in (("correct", "answer"), ("fix_reference", "reference")):
        number = getattr(args, flag)
        if number is not None:
            if args.answer is None:
                raise TunedeckError(f"--{flag.replace('_', '-')} needs --answer TEXT")
            actions.append(Action(number, kind, args.answer))
    for number, mark in args.mark:
        actions.append(Action(_number(number), "mark", mark))
    for number, text in args.note:
        actions.append(Action(_number(number), "note", text))
    if args.import_file:
        actions += parse_actions(Path(args.import_file).expanduser())
    return actions


def _number(text: str) -> int:
    from engine.core.errors import TunedeckError

    try:
        return int(text)
    except ValueError:
        raise TunedeckError(f"{text!r} is not an example number", hint="N counts from 1") from None


def run_review(args: argparse.Namespace) -> int:
    """Apply the review actions given (all checked first), then list or summarise."""
    from engine.eval.sets import set_name_for
    from engine.loop.review import apply_actions, review_listing
    from engine.runs.store import find_run

    run_dir = find_run(args.run)
    eval_set = set_name_for(
        run_dir, str(Path(args.data).expanduser().resolve()) if args.data else None
    )
    actions = _actions(args)
    for warning in apply_actions(run_dir, eval_set, actions) if actions else []:
        print(f"warning: {warning}", file=sys.stderr)
    listing = review_listing(run_dir, eval_set)
    if args.json:
        print(json.dumps(listing, ensure_ascii=False))
        return 0
    if actions:
        print(f"saved {len(actions)} review action(s)")
    counts = {v: sum(item["verdict"] == v for item in listing) for v in ("accepted", "corrected")}
    marked = sum(item["mark"] is not None for item in listing)
    fixed = sum(item["fixed_reference"] is not None for item in listing)
    print(
        f"{len(listing)} examples: {counts['accepted']} accepted, {counts['corrected']} "
        f"corrected, {marked} marked, {fixed} reference(s) fixed"
    )
    return 0


def run_data_add(args: argparse.Namespace) -> int:
    """Grow the run's data from the reviewed pool and lint the result."""
    from engine.loop.grow import grow_data
    from engine.runs.store import find_run

    run_dir = find_run(args.run)
    data = str(Path(args.data).expanduser().resolve())
    result = grow_data(run_dir, data, Path(args.out).expanduser(), args.force)
    for line in result.lines():  # the lint of the result last
        print(line)
    print(f"next: tunedeck train --data {result.out} --like {run_dir.name}")
    return 0


def run_data_fix(args: argparse.Namespace) -> int:
    """Write the corrected copy of the set's source file."""
    from engine.loop.fix import fix_data
    from engine.loop.grow import lint_line
    from engine.runs.store import find_run

    run_dir = find_run(args.run)
    result = fix_data(run_dir, args.eval_set, Path(args.out).expanduser(), args.force)
    print(result.text())
    print(lint_line(result.out))
    print(f"next: tunedeck train --data {result.out} --like {run_dir.name}")
    return 0
