"""`tunedeck eval RUN [--data FILE]`: compare the fine-tuned adapter with the base model on
held-out data: the run's validation split, or a separate test file."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `eval` to the CLI."""
    from engine.eval.options import add_arguments

    parser = subparsers.add_parser(
        "eval",
        help="evaluate a run: fine-tuned vs base model (zero- and few-shot) on held-out data",
        description=(
            "Generate answers for the run's validation prompts (or a test file's, --data) "
            "with the base model (zero-shot and few-shot) and the fine-tuned adapter, and "
            "score them (exact match, token F1, ROUGE-L, JSON validity, label or field "
            "accuracy, memorisation, general-ability probes, loss; optionally an LLM judge). "
            "The primary score gets a 95 % interval and fine-tuned vs the stronger base an "
            "exact sign test. Runs in the foreground with progress on stderr; rows already "
            "generated are reused, so an interrupted evaluation resumes. Results: "
            "<run>/eval/ (a test file's: <run>/eval/test-<name>-<hash>/)."
        ),
    )
    parser.add_argument("run", metavar="RUN", help="run id (or a unique prefix of it)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_arguments(parser)
    parser.set_defaults(handler=run_eval_command)


def run_eval_command(args: argparse.Namespace) -> int:
    """Evaluate a run in the foreground and print its summary."""
    from engine.eval.launch import run_eval
    from engine.eval.options import from_args
    from engine.eval.review import review_summary
    from engine.eval.store import VALIDATION, set_path
    from engine.runs.store import find_run

    run_dir = find_run(args.run)
    options = from_args(args)
    summary = run_eval(run_dir, options, on_event=print_progress)
    eval_set = (summary.get("eval_set") or {}).get("name") or VALIDATION
    review = review_summary(run_dir, summary.get("against") or "base_zero", eval_set)
    results = set_path(run_dir, eval_set)
    if args.json:
        print(json.dumps({**summary, "review": review, "dir": str(results)}))
    else:
        print(format_summary(summary, review))
        print(f"results: {results}")
    return 0


def print_progress(event: dict[str, Any]) -> None:
    """One stderr line per evaluation event worth a line."""
    kind = event.get("type")
    if kind == "eval_progress":
        phase, system = event.get("phase"), event.get("system")
        if phase == "load":
            line = "loading the model"
        else:
            line = f"{phase} {system}: {event.get('done')}/{event.get('total')}"
    elif kind == "eval_note":
        line = f"note: {event.get('message')}"
    elif kind == "eval_started":
        scored = event.get("scored") or f"{event.get('examples')} examples"
        line = f"evaluating {', '.join(event.get('systems', []))} on the {scored}"
    else:
        return
    print(line, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Text summary
# ---------------------------------------------------------------------------

_COLUMNS = (
    ("n", "n", "{:>4}"),
    ("primary", "primary", "{:>8}"),
    ("primary_ci", "95% interval", "{:>14}"),
    ("exact", "exact", "{:>6}"),
    ("f1", "F1", "{:>6}"),
    ("rouge_l", "ROUGE-L", "{:>8}"),
    ("json_valid", "JSON", "{:>6}"),
    ("same_keys", "keys", "{:>6}"),
    ("val_loss", "val loss", "{:>10}"),
    ("perplexity", "ppl", "{:>8}"),
    ("memorised", "copied", "{:>7}"),
    ("cut_at_limit", "cut", "{:>5}"),
)


def _cell(value: Any, key: str) -> str:
    if value is None:
        return "-"
    if key in ("n", "cut_at_limit"):
        return str(value)
    if key == "perplexity":
        return f"{value:.1f}"
    if key == "val_loss":
        return f"{value:.4f}"
    if key == "primary_ci":
        return f"{value['low']:.2f}-{value['high']:.2f}"
    return f"{value:.2f}"


def format_summary(summary: dict[str, Any], review: dict[str, Any]) -> str:
    """The summary as a table per system, then verdict, probes, judge and review lines."""
    from engine.eval.summary import primary_reason

    primary = summary.get("primary", {}).get("name", "primary")
    eval_set = summary.get("eval_set") or {}
    scored = eval_set.get("title", "validation split")
    loss = "val loss" if eval_set.get("name", "validation") == "validation" else "test loss"
    titles = [loss if key == "val_loss" else title for key, title, _ in _COLUMNS]
    if summary.get("pool"):
        head = (f"run {summary.get('run')}: {scored}, {summary.get('examples')} prompts "
                "answered; no references, so nothing is scored: review the answers")  # fmt: skip
    else:
        head = (f"run {summary.get('run')}: {scored}, {summary.get('examples')} examples scored "
                f"(of {summary.get('val_examples')}); primary score = {primary} "
                "(95% interval beside it)")  # fmt: skip
    lines = [
        head,
        "",
        f"{'system':<24}" + "".join(c[2].format(t) for c, t in zip(_COLUMNS, titles, strict=True)),
    ]
    for stats in summary.get("systems", {}).values():
        cells = [fmt.format(_cell(stats.get(key), key)) for key, _, fmt in _COLUMNS]
        lines.append(f"{stats.get('title', ''):<24}" + "".join(cells))
    lines.append(
        "copied: share of answers closer to a training answer than to their reference "
        "(ROUGE-L >= 0.9); cut: answers stopped by the length limit"
    )
    lines.append("")
    reason = "" if summary.get("pool") else primary_reason(summary)
    if reason:
        lines.append(f"primary metric: {reason}")
    lines += _key_lines(summary)
    lines.append(f"verdict: {summary.get('verdict')}")
    probes = summary.get("probes")
    if probes:
        lines.append(probes["note"])
    judge = summary.get("judge")
    if judge and judge.get("n"):
        lines.append(
            f"judge vs {judge['against']}: fine-tuned win rate {judge['win_rate']:.2f} over "
            f"{judge['n']} examples ({judge['wins']} won, {judge['losses']} lost, "
            f"{judge['ties']} tied); swap consistency {judge['consistency']:.2f}"
        )
    ab = review.get("ab", {})
    if ab.get("n"):
        lines.append(
            f"human A/B vs {ab['against']}: fine-tuned win rate {ab['win_rate']:.2f} over "
            f"{ab['n']} blind choices"
        )
    marks = review.get("marks", {})
    if any(marks.values()):
        lines.append("review marks: " + ", ".join(f"{k} {v}" for k, v in marks.items()))
    verdicts = review.get("verdicts", {})
    if any(verdicts.values()):
        lines.append("reviewed answers: " + ", ".join(f"{k} {v}" for k, v in verdicts.items()))
    lines += [f"note: {note}" for note in summary.get("notes", [])]
    return "\n".join(lines)


def _key_lines(summary: dict[str, Any]) -> list[str]:
    """Each JSON key's accuracy (exact match of that field) per system, when answers are JSON."""
    lines = []
    for stats in summary.get("systems", {}).values():
        keys = stats.get("key_match") or {}
        if keys:
            shown = ", ".join(f"{k} {v:.2f}" for k, v in keys.items())
            lines.append(f"{stats.get('title')}: field accuracy per key: {shown}")
    return lines + ([""] if lines else [])
