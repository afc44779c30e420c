"""The Markdown run report: data, lint, config, loss curves, evaluation, review."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from engine.core.events import iter_all_events, metric_history
from engine.core.layout import (
    CONFIG_FILE,
    DATA_DIR,
    EVAL_DIR,
    MANIFEST_FILE,
    REVIEW_FILE,
    SUMMARY_FILE,
    TRAIN_FILE,
)
from engine.runs.text_chart import line_chart


def render_report(run_dir: Path) -> str:
    """A self-contained Markdown report of one run."""
    events = list(iter_all_events(run_dir))
    sections = [
        f"# Run report: {run_dir.name}\n",
        _data_section(run_dir, events),
        _lint_section(run_dir),
        "## Config\n\n```toml\n" + (run_dir / CONFIG_FILE).read_text().strip() + "\n```\n",
        _loss_section(events),
        _eval_section(run_dir),
        _review_section(run_dir),
    ]
    return "\n".join(section for section in sections if section)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _data_section(run_dir: Path, events: list[dict[str, Any]]) -> str:
    manifest = _read_json(run_dir / DATA_DIR / MANIFEST_FILE)
    source = manifest.get("source") or {}
    counts = manifest.get("counts") or {}
    lines = ["## Data\n"]
    lines.append(f"- source: `{source.get('path', '?')}` ({source.get('format', '?')}), "
                 f"sha256 `{source.get('sha256', '?')}`")  # fmt: skip
    lines.append(f"- split: {counts.get('train', '?')} train / {counts.get('val', '?')} "
                 f"validation, seed {manifest.get('seed', '?')}, stratified by "
                 f"{manifest.get('stratified_by') or 'nothing'}")  # fmt: skip
    labels = manifest.get("labels") or {}
    for side in ("train", "val"):
        if labels.get(side):
            pairs = ", ".join(f"{k} {v}" for k, v in labels[side].items())
            lines.append(f"- labels ({side}): {pairs}")
    for event in events:
        if event.get("type") == "data":
            lines += [f"- warning: {w}" for w in event.get("warnings") or []]
    return "\n".join(lines) + "\n"


def _lint_section(run_dir: Path) -> str:
    from engine.data.lint.linter import lint_file

    train = run_dir / DATA_DIR / TRAIN_FILE
    if not train.is_file():
        return ""
    report = lint_file(train)
    by_severity = Counter(f.severity for f in report.findings)
    codes = Counter(f.code for f in report.findings if f.severity != "info")
    detail = ", ".join(f"{code} {n}" for code, n in codes.most_common()) or "none"
    return (
        "## Lint of the training data\n\n"
        f"{by_severity.get('error', 0)} errors, {by_severity.get('warning', 0)} warnings "
        f"({detail}); token checks not run for the report.\n"
    )


def _loss_section(events: list[dict[str, Any]]) -> str:
    points = metric_history(events)
    train = [(p["step"], p["loss"]) for p in points if p.get("split") == "train"]
    val = [(p["step"], p["loss"]) for p in points if p.get("split") == "val"]
    train = [(s, v) for s, v in train if isinstance(v, int | float)]
    val = [(s, v) for s, v in val if isinstance(v, int | float)]
    if not train and not val:
        return "## Loss\n\nNo metrics were logged.\n"
    chart = line_chart({"train loss": train, "validation loss": val})
    lines = ["## Loss\n", "```", chart, "```", ""]
    best = [e for e in events if e.get("type") == "best"]
    if best:
        lines.append(f"Best validation loss {best[-1]['val_loss']:.4f} at step "
                     f"{best[-1]['step']} (the exported adapter).")  # fmt: skip
    for event in events:
        if event.get("type") == "early_stop":
            lines.append(f"Early stopping at step {event.get('step')}.")
        if event.get("type") == "warning" and event.get("code") == "overfitting":
            lines.append(f"Overfitting warning: {event.get('message')}")
    return "\n".join(lines) + "\n"


def _eval_section(run_dir: Path) -> str:
    summary = _read_json(run_dir / EVAL_DIR / SUMMARY_FILE)
    if not summary:
        return "## Evaluation\n\nNot evaluated yet (`tunedeck eval RUN`).\n"
    lines = ["## Evaluation\n"]
    if summary.get("verdict"):
        lines.append(f"**{summary['verdict']}**\n")
    lines.append("```json\n" + json.dumps(summary, indent=2)[:6000] + "\n```")
    return "\n".join(lines) + "\n"


def _review_section(run_dir: Path) -> str:
    path = run_dir / EVAL_DIR / REVIEW_FILE
    if not path.is_file():
        return ""
    marks: dict[Any, str] = {}
    for raw in path.read_text().splitlines():
        try:
            row = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "index" in row:
            marks[row["index"]] = str(row.get("mark"))
    counts = Counter(marks.values())
    pairs = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return f"## Human review\n\n{len(marks)} examples reviewed: {pairs}.\n"
