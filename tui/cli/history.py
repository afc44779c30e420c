"""`tunedeck compare | delete`: look back over runs: compare several, delete finished ones.

`compare RUNS --data TEST` compares them by outcome on one test file instead
(engine.runs.outcome): scores with intervals, and a paired test against the first run.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

CHART_WIDTH = 64
CHART_HEIGHT = 14
TRAIN_MARKERS = "*+#@%"
VAL_MARKERS = "oxs&="


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `compare` and `delete` to the CLI."""
    compare = subparsers.add_parser(
        "compare",
        help="compare two or more runs: loss curves, config differences, eval summaries",
        description=(
            "Compare runs side by side: their training and validation loss curves on one "
            "text chart, the config fields whose values differ, and the evaluation "
            "aggregates of each system (where the runs were evaluated), all on one primary "
            "metric: the first run's, or --primary. With --data TEST: their outcome on that "
            "one test file instead, every run scored on it (its stored answers re-scored, "
            "nothing generated), each later run against the first with a paired test."
        ),
    )
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run ids (or unique prefixes)")
    compare.add_argument(
        "--data",
        metavar="TEST",
        help="compare by outcome on this test file (every run scored on it with `tunedeck "
        "eval RUN --data TEST`): each run's scores with 95 %% intervals, and each later run "
        "against the first with a paired sign test",
    )
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare.add_argument(
        "--primary",
        metavar="METRIC",
        help="compare on this primary metric: label:KEY, fields, exact, rouge (default: the "
        "first run's; the others are re-scored from their stored answers)",
    )
    compare.set_defaults(handler=run_compare)

    delete = subparsers.add_parser(
        "delete",
        help="delete finished runs and all their files (asks first)",
        description=(
            "Delete runs: their directories with checkpoints, adapter, evaluation and logs. "
            "A run that is training (or being evaluated) is refused: stop it first. Asks "
            "for confirmation on a terminal; without one, --yes is required."
        ),
    )
    delete.add_argument("runs", nargs="+", metavar="RUN", help="run ids (or unique prefixes)")
    delete.add_argument("--yes", "-y", action="store_true", help="delete without asking")
    delete.set_defaults(handler=run_delete)


# ---------------------------------------------------------------------------


def run_compare(args: argparse.Namespace) -> int:
    """Print the comparison of the runs as text tables and a chart (or JSON)."""
    from engine.runs.compare import compare_runs
    from engine.runs.store import find_run

    if args.data:
        return run_outcome(args)
    comparison = compare_runs([find_run(ref) for ref in args.runs], args.primary)
    if args.json:
        print(json.dumps(comparison.to_json()))
        return 0
    print(format_comparison(comparison))
    return 0


def format_comparison(comparison: Any) -> str:
    """The runs, the loss chart, the config differences and the eval aggregates as text."""
    from engine.runs.compare import config_rows, eval_rows
    from engine.runs.text_chart import line_chart

    runs = comparison.runs
    tags = [chr(ord("A") + index) for index in range(len(runs))]
    lines = [f"{tag}  {run.id}{_best(run.best)}" for tag, run in zip(tags, runs, strict=True)]
    series: dict[str, Any] = {}
    markers = ""
    for index, (tag, run) in enumerate(zip(tags, runs, strict=True)):
        series[f"{tag} train"], series[f"{tag} val"] = run.train, run.val
        markers += TRAIN_MARKERS[index % len(TRAIN_MARKERS)] + VAL_MARKERS[index % len(VAL_MARKERS)]
    lines += ["", "Loss (train and validation) against step", ""]
    lines.append(line_chart(series, width=CHART_WIDTH, height=CHART_HEIGHT, markers=markers))
    lines += ["", "Config differences"]
    rows = config_rows(comparison)
    lines.append(_table(["field", *tags], rows) if rows else "  (the configs are identical)")
    lines += ["", "Evaluation"]
    if comparison.primary_line():
        lines.append(f"  {comparison.primary_line()}")
    rows = eval_rows(comparison)
    lines.append(_table(["system · metric", *tags], rows) if rows else "  (no run evaluated)")
    verdicts = [(tag, run.verdict) for tag, run in zip(tags, runs, strict=True) if run.verdict]
    lines += [f"  {tag}: {verdict}" for tag, verdict in verdicts]
    return "\n".join(lines)


def run_outcome(args: argparse.Namespace) -> int:
    """Print the runs' outcome on the test file `args.data` (or its JSON)."""
    from engine.config.build import load_config
    from engine.runs.compare import config_differences
    from engine.runs.outcome import compare_outcome
    from engine.runs.store import CONFIG_FILE, find_run

    run_dirs = list(dict.fromkeys(find_run(ref) for ref in args.runs))
    outcome = compare_outcome(run_dirs, args.data, args.primary)
    differences = config_differences([load_config(d / CONFIG_FILE) for d in run_dirs])
    if args.json:
        print(json.dumps({**outcome.to_json(), "config_differences": differences}))
        return 0
    print(format_outcome(outcome, differences))
    return 0


def format_outcome(outcome: Any, differences: dict[str, list[Any]]) -> str:
    """The runs, the outcome table and sentences, and the config differences as text."""
    from engine.runs.compare import display_value
    from engine.runs.outcome import STANDARD

    tags = [chr(ord("A") + index) for index in range(len(outcome.runs))]
    lines = [f"{tag}  {run.id}" for tag, run in zip(tags, outcome.runs, strict=True)]
    lines += ["", f"Outcome on test file {outcome.file} ({outcome.examples} examples)"]
    lines.append(f"  {outcome.primary_line()}")
    if outcome.coverage():
        lines.append(f"  {outcome.coverage()}")
    header = ["run", f"{outcome.primary['name']} [95 % CI]", *(label for _k, label in STANDARD)]
    rows = [
        (tag, [run.primary.text(), *(run.standard[key].text() for key, _label in STANDARD)])
        for tag, run in zip(tags, outcome.runs, strict=True)
    ]
    lines += [_table(header, rows), ""]
    lines += [f"  {sentence}" for sentence in outcome.sentences(tags)]
    lines += ["", "Config differences"]
    config = [(name, [display_value(v) for v in values]) for name, values in differences.items()]
    lines.append(_table(["field", *tags], config) if config else "  (the configs are identical)")
    return "\n".join(lines)


def _best(best: tuple[int, float] | None) -> str:
    return f"  (best val loss {best[1]:.4f} at step {best[0]})" if best else ""


def _table(header: list[str], rows: list[tuple[str, list[str]]]) -> str:
    """Aligned text columns, two spaces apart."""
    table = [header, *([label, *cells] for label, cells in rows)]
    widths = [max(len(row[col]) for row in table) for col in range(len(header))]
    return "\n".join(
        ("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))).rstrip()
        for row in table
    )


# ---------------------------------------------------------------------------


def run_delete(args: argparse.Namespace) -> int:
    """Check every run first, ask once (or require --yes), then delete them."""
    from engine.core.errors import TunedeckError
    from engine.runs.admin import check_deletable, delete_run
    from engine.runs.store import find_run

    run_dirs = list(dict.fromkeys(find_run(ref) for ref in args.runs))
    deletions = [check_deletable(run_dir) for run_dir in run_dirs]
    for deletion in deletions:
        print(f"{deletion.info.id}  {deletion.info.state}  {_size(deletion.size)}")
    if not args.yes:
        if not sys.stdin.isatty():
            raise TunedeckError(
                "not deleting without confirmation",
                hint="pass --yes to delete runs from a script",
            )
        answer = input(f"Delete {len(deletions)} run(s) and all their files? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    for run_dir in run_dirs:
        deletion = delete_run(run_dir)
        print(f"deleted {deletion.info.id} ({_size(deletion.size)})")
    return 0


def _size(n: int) -> str:
    if n >= 2**30:
        return f"{n / 2**30:.1f} GB"
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"
