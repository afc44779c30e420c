"""Several runs side by side: loss curves, the config fields that differ, eval summaries.

The evaluations are compared on one primary metric: the first run's (engine.eval.primary),
or the one the user names. A run that scores by another is re-scored from its stored
answers for the comparison (engine.eval.rescore.summary_under), so two runs of one task
never show two metrics.

`compare_runs` reads the run directories; `build_comparison` does the work on data already
read, so a viewer with its own runs (a test's fake backend) gets the same result. The row
helpers (`config_rows`, `eval_rows`) are what both the CLI table and the TUI tables show.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.config.build import TrainConfig, load_config, to_dict
from engine.core.errors import TunedeckError
from engine.core.events import iter_all_events, metric_history
from engine.data.primary import AUTO, Primary, check_fits, parse_primary
from engine.eval.options import BASE_FEW, BASE_ZERO, TUNED, system_title
from engine.eval.primary import run_primary
from engine.eval.rescore import summary_under
from engine.eval.sets import read_split
from engine.eval.summary import load_summary
from engine.runs.store import CONFIG_FILE

Point = tuple[int, float]

EVAL_METRICS: tuple[tuple[str, str], ...] = (
    ("primary", "primary"),
    ("exact", "exact match"),
    ("rouge_l", "ROUGE-L"),
    ("json_valid", "valid JSON"),
    ("label_accuracy", "label accuracy"),
    ("val_loss", "val loss"),
    ("failures", "failures"),
    ("n", "examples"),
)
"""Aggregates compared, in order, with their labels (the primary metric's name is shown
once, above the table: Comparison.primary)."""
SYSTEM_ORDER = (TUNED, BASE_FEW, BASE_ZERO)
"""Systems shown first; checkpoints (`tuned@<step>`) follow in step order."""


@dataclass(frozen=True)
class ComparedRun:
    """One run as the comparison sees it."""

    id: str
    train: list[Point]
    """(step, training loss), one continuous curve across resumes."""
    val: list[Point]
    """(step, validation loss)."""
    best: Point | None
    """(step, validation loss) of the best adapter."""
    eval: dict[str, dict[str, Any]] = field(default_factory=dict)
    """System -> aggregate metrics of the last evaluation; empty when never evaluated."""
    primary_name: str | None = None
    """What the evaluation's primary score measures (e.g. `label accuracy`)."""
    verdict: str | None = None


@dataclass(frozen=True)
class Comparison:
    """Two or more runs: their curves and evaluations, and where their configs differ."""

    runs: list[ComparedRun]
    config: dict[str, list[Any]]
    """Flattened config field (`lora.r`) -> its value in each run; differing fields only."""
    primary: dict[str, str] | None = None
    """The one primary metric every evaluation is shown with: `name`, `spec`, `why` and
    `of` (whose choice: `run <id>` or `you`); None when no run was evaluated."""

    def primary_line(self) -> str:
        """`primary metric: category accuracy (run A's: the JSON key ...)`, or ""."""
        if not self.primary:
            return ""
        why = f": {self.primary['why']}" if self.primary.get("why") else ""
        return f"primary metric: {self.primary['name']} ({self.primary['of']}{why})"

    def systems(self) -> list[str]:
        """Every evaluated system of any run, the base and fine-tuned ones first."""
        present = {system for run in self.runs for system in run.eval}
        extra = sorted(present - set(SYSTEM_ORDER), key=_checkpoint_step)
        return [s for s in SYSTEM_ORDER if s in present] + extra

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready data (`tunedeck compare --json`)."""
        return {
            "primary": self.primary,
            "runs": [asdict(run) for run in self.runs],
            "config_differences": self.config,
        }


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------


def compare_runs(run_dirs: Sequence[Path], primary: str | None = None) -> Comparison:
    """Read and compare runs (two or more distinct ones), on one primary metric.

    Args:
        primary: the metric to compare on (`label:KEY`, `fields`, `exact`, `rouge`);
            None or `auto`: the first run's.

    Raises:
        TunedeckError: fewer than two runs, or a metric that does not fit a run's data;
            ConfigError: a run's config is unreadable.
    """
    unique = list(dict.fromkeys(run_dirs))
    _check_count(len(unique))
    choice, of = comparison_primary(unique, primary)
    loaded = [
        (
            run_dir.name,
            list(iter_all_events(run_dir)),
            load_config(run_dir / CONFIG_FILE),
            summary_under(run_dir, choice) if choice is not None else load_summary(run_dir),
        )
        for run_dir in unique
    ]
    note = None
    if choice is not None and any(summary for *_rest, summary in loaded):
        note = {"name": choice.name, "spec": choice.spec, "why": choice.why, "of": of}
    return build_comparison(loaded, note)


def comparison_primary(
    run_dirs: Sequence[Path], spelling: str | None = None
) -> tuple[Primary | None, str]:
    """The metric a comparison uses, and whose it is: the user's (checked against every
    run's training answers) or the first run's (None: it has no training data)."""
    if spelling is not None and spelling.strip().lower() != AUTO:
        choice = parse_primary(spelling)
        for run_dir in run_dirs:
            check_fits(choice, [e.answer for e in read_split(run_dir, "train")])
        return choice, "chosen by you"
    return run_primary(run_dirs[0]), f"run {run_dirs[0].name}'s"


def build_comparison(
    runs: Sequence[tuple[str, list[dict[str, Any]], TrainConfig, dict[str, Any] | None]],
    primary: dict[str, str] | None = None,
) -> Comparison:
    """The comparison of runs already read: (id, events, config, eval summary or None).

    Args:
        primary: the metric every summary is scored by (compare_runs re-scores them);
            None: the first evaluated run's, as its summary names it.
    """
    _check_count(len(runs))
    compared = [_compared_run(run_id, events, summary) for run_id, events, _cfg, summary in runs]
    if primary is None:
        primary = next(
            (_primary_of(run_id, s) for run_id, _e, _c, s in runs if s and s.get("primary")),
            None,
        )
    return Comparison(compared, config_differences([c for _id, _ev, c, _s in runs]), primary)


def _primary_of(run_id: str, summary: dict[str, Any]) -> dict[str, str]:
    stored = summary.get("primary") or {}
    return {"name": str(stored.get("name") or "primary score"), "spec": str(stored.get("spec", "")),
            "why": str(stored.get("why", "")), "of": f"run {run_id}'s"}  # fmt: skip


def _check_count(count: int) -> None:
    if count < 2:
        raise TunedeckError(
            "a comparison needs two or more different runs",
            hint="name two or more runs (`tunedeck runs` lists them)",
        )


def _compared_run(
    run_id: str, events: list[dict[str, Any]], summary: dict[str, Any] | None
) -> ComparedRun:
    train, val = loss_curves(events)
    best = [e for e in events if e.get("type") == "best" and _finite(e.get("val_loss")) is not None]
    best_point = (int(best[-1].get("step", 0)), float(best[-1]["val_loss"])) if best else None
    systems, primary, verdict = eval_digest(summary)
    return ComparedRun(run_id, train, val, best_point, systems, primary, verdict)


def loss_curves(events: list[dict[str, Any]]) -> tuple[list[Point], list[Point]]:
    """(train, val) loss points of a run's events; non-numeric losses (nan) left out."""
    points = metric_history(events)
    curves: dict[str, list[Point]] = {"train": [], "val": []}
    for point in points:
        loss = _finite(point.get("loss"))
        if point.get("split") in curves and loss is not None:
            curves[point["split"]].append((int(point["step"]), loss))
    return curves["train"], curves["val"]


def eval_digest(
    summary: dict[str, Any] | None,
) -> tuple[dict[str, dict[str, Any]], str | None, str | None]:
    """(system -> compared aggregates, primary metric name, verdict) of an eval summary."""
    if not summary:
        return {}, None, None
    systems = summary.get("systems")
    digest = {
        system: {key: stats.get(key) for key, _label in EVAL_METRICS}
        for system, stats in (systems.items() if isinstance(systems, dict) else ())
        if isinstance(stats, dict)
    }
    primary = summary.get("primary")
    name = primary.get("name") if isinstance(primary, dict) else None
    verdict = summary.get("verdict")
    return digest, name, verdict if isinstance(verdict, str) else None


def flatten_config(cfg: TrainConfig) -> dict[str, Any]:
    """Every config field by its dotted name (`lora.r`), as plain data."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, data: dict[str, Any]) -> None:
        for key, value in data.items():
            if isinstance(value, dict):
                walk(f"{prefix}{key}.", value)
            else:
                flat[f"{prefix}{key}"] = value

    walk("", to_dict(cfg))
    return flat


def config_differences(configs: Sequence[TrainConfig]) -> dict[str, list[Any]]:
    """Field -> value per config, for the fields whose values are not all equal."""
    flats = [flatten_config(cfg) for cfg in configs]
    names = list(dict.fromkeys(name for flat in flats for name in flat))
    differences: dict[str, list[Any]] = {}
    for name in names:
        values = [flat.get(name) for flat in flats]
        if any(value != values[0] for value in values[1:]):
            differences[name] = values
    return differences


# ---------------------------------------------------------------------------
# Rows for tables (CLI and TUI)
# ---------------------------------------------------------------------------


def display_value(value: Any) -> str:
    """A config value or metric as a table cell."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(display_value(v) for v in value)
    return str(value)


def config_rows(comparison: Comparison) -> list[tuple[str, list[str]]]:
    """(field, cell per run) for every config field that differs."""
    return [
        (name, [display_value(v) for v in values]) for name, values in comparison.config.items()
    ]


def eval_rows(comparison: Comparison) -> list[tuple[str, list[str]]]:
    """(`system · metric`, cell per run) for every aggregate some run has; the primary
    metric's row is `system · primary` (its name: Comparison.primary_line)."""
    rows: list[tuple[str, list[str]]] = []
    for system in comparison.systems():
        for key, label in EVAL_METRICS:
            values = [run.eval.get(system, {}).get(key) for run in comparison.runs]
            if all(value is None for value in values):
                continue
            title = f"{system_title(system)} · {label}"
            rows.append((title, [display_value(v) for v in values]))
    return rows


def _checkpoint_step(system: str) -> tuple[int, str]:
    step = system.split("@", 1)[1] if "@" in system else ""
    return (int(step), system) if step.isdigit() else (0, system)


def _finite(value: Any) -> float | None:
    """A loss as a float, or None for a missing, non-numeric or non-finite one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
