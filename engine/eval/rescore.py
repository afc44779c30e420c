"""A run's evaluation as if scored by another primary metric (another run's, in a comparison).

Nothing is generated and nothing is written: the stored answers are scored again under the
metric asked for, and the summary rebuilt from them (engine.eval.summary.build_summary).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.data.primary import Primary
from engine.eval.sets import load_eval_set, read_split
from engine.eval.store import VALIDATION
from engine.eval.summary import (
    build_scoring,
    build_summary,
    load_summary,
    score_output,
    system_rows,
)

_KEPT = ("examples", "val_examples", "eval_set", "settings", "notes", "probes", "judge")
"""Summary fields that do not depend on the primary metric (kept when it is rescored)."""


def summary_under(
    run_dir: Path, primary: Primary, eval_set: str = VALIDATION
) -> dict[str, Any] | None:
    """The set's summary as if the run scored by `primary` (another run's metric, in a
    comparison): the stored summary when it already does, else rebuilt from the stored
    answers, re-scored (nothing is generated, nothing is written). None: never evaluated.
    """
    summary = load_summary(run_dir, eval_set)
    if summary is None or (summary.get("primary") or {}).get("spec") == primary.spec:
        return summary
    systems = [s for s in summary.get("systems", {}) if isinstance(s, str)]
    limit = summary.get("examples") if isinstance(summary.get("examples"), int) else None
    references = [e.answer for e in load_eval_set(run_dir, eval_set).examples]
    ctx, index = build_scoring(read_split(run_dir, "train"), references, primary)
    rows = {}
    for system in systems:
        rows[system] = system_rows(run_dir, system, limit, eval_set)
        for row in rows[system]:
            row["metrics"] = score_output(row["output"], row["reference"], ctx, index)
    losses = {s: (summary["systems"][s] or {}).get("val_loss") for s in systems}
    extra = {key: summary[key] for key in _KEPT if key in summary}
    return build_summary(run_dir, systems, ctx, losses, limit, extra, eval_set, rows)
