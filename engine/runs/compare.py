"""Several runs side by side: loss curves, the config fields that differ, eval summaries.

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
from engine.eval.options import BASE_FEW, BASE_ZERO, TUNED, system_title
from engine.eval.summary import load_summary
from engine.runs.store import CONFIG_FILE

Point = tuple[int, float]

EVAL_METRICS: tuple[tuple[str, str | None], ...] = (
    ("primary", None),
    ("exact", "exact match"),
    ("rouge_l", "ROUGE-L"),
    ("json_valid", "valid JSON"),
    ("label_accuracy", "label accuracy"),
    ("val_loss", "val loss"),
    ("failures", "failures"),
    ("n", "examples"),
)
"""Aggregates compared, in order, with their labels (None: the primary metric's name)."""
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

    def systems(self) -> list[str]:
        """Every evaluated system of any run, the base and fine-tuned ones first."""
        present = {system for run in self.runs for system in run.eval}
        extra = sorted(present - set(SYSTEM_ORDER), key=_checkpoint_step)
        return [s for s in SYSTEM_ORDER if s in present] + extra

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready data (`tunedeck compare --json`)."""
        return {
            "runs": [asdict(run) for run in self.runs],
            "config_differences": self.config,
        }


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------


def compare_runs(run_dirs: Sequence[Path]) -> Comparison:
    """Read and compare runs (two or more distinct ones).

    Raises:
        TunedeckError: fewer than two runs; ConfigError: a run's config is unreadable.
    """
    unique = list(dict.fromkeys(run_dirs))
    _check_count(len(unique))
    loaded = [
        (
            run_dir.name,
            list(iter_all_events(run_dir)),
            load_config(run_dir / CONFIG_FILE),
            load_summary(run_dir),
        )
        for run_dir in unique
    ]
    return build_comparison(loaded)


def build_comparison(
    runs: Sequence[tuple[str, list[dict[str, Any]], TrainConfig, dict[str, Any] | None]],
) -> Comparison:
    """The comparison of runs already read: (id, events, config, eval summary or None)."""
    _check_count(len(runs))
    compared = [_compared_run(run_id, events, summary) for run_id, events, _cfg, summary in runs]
    return Comparison(compared, config_differences([cfg for _id, _ev, cfg, _s in runs]))


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
    """(`system · metric`, cell per run) for every aggregate some run has."""
    names = {run.primary_name for run in comparison.runs if run.primary_name}
    primary_label = names.pop() if len(names) == 1 else "primary score"
    rows: list[tuple[str, list[str]]] = []
    for system in comparison.systems():
        for key, label in EVAL_METRICS:
            values = [run.eval.get(system, {}).get(key) for run in comparison.runs]
            if all(value is None for value in values):
                continue
            title = f"{system_title(system)} · {label or primary_label}"
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
