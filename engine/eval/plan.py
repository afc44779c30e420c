"""What an evaluation covers: the held-out data, the systems, and the weights each needs.

Shared by the launcher (engine.eval.launch, which checks before starting a process) and
the runner (engine.eval.runner, which loads one model group after another).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from engine.core import checkpoints
from engine.core.control import worker_alive
from engine.core.errors import TunedeckError
from engine.core.layout import ADAPTER_DIR, CHECKPOINT_DIR, DATA_DIR, VAL_FILE
from engine.data.pool import is_pool_file
from engine.eval.options import (
    BASE_FEW,
    BASE_ZERO,
    TUNED,
    EvalOptions,
    checkpoint_system,
    is_checkpoint_system,
)
from engine.eval.sets import check_eval_file
from engine.eval.store import file_digest


class NoAdapterError(TunedeckError):
    """The fine-tuned system was asked for, but the run has no adapter yet."""


class NoValidationDataError(TunedeckError):
    """The run has no held-out examples to evaluate on."""


# ---------------------------------------------------------------------------
# What to evaluate
# ---------------------------------------------------------------------------


def check_eval_data(run_dir: Path, options: EvalOptions) -> None:
    """Raise when there is nothing to score: no validation split, or a bad test file.

    Raises:
        NoValidationDataError: no test file given and the run has no validation examples.
        EvalDataError: the test file is unreadable or has a bad record (file and line).
    """
    if options.data:
        check_eval_file(options.data)
    else:
        check_validation_data(run_dir)


def check_validation_data(run_dir: Path) -> None:
    """Raise NoValidationDataError when the run's validation split is empty."""
    path = run_dir / DATA_DIR / VAL_FILE
    if not path.is_file() or path.stat().st_size == 0:
        raise NoValidationDataError(
            f"run {run_dir.name} has no validation examples to evaluate on",
            hint="score a separate test file (tunedeck eval RUN --data FILE), or start a run "
            "with a validation split (data.val_fraction > 0, or --val-data FILE); examples "
            "the model trained on say nothing about what it learned",
        )


def has_adapter(path: Path) -> bool:
    """A PEFT adapter directory with its config and weights."""
    return (path / "adapter_config.json").is_file() and any(path.glob("adapter_model.*"))


def checkpoint_adapters(run_dir: Path) -> dict[int, Path]:
    """Complete saved checkpoints that hold an adapter, by step."""
    return {
        step: path
        for step, path in checkpoints.checkpoints_by_step(run_dir / CHECKPOINT_DIR)
        if checkpoints.is_valid(path) and has_adapter(path)
    }


def plan_systems(run_dir: Path, options: EvalOptions) -> tuple[list[str], list[str]]:
    """The systems this evaluation covers, and notes for the user about the choice.

    Raises:
        NoAdapterError: `tuned` was asked for explicitly and there is no adapter yet.
    """
    notes: list[str] = []
    adapter = has_adapter(run_dir / ADAPTER_DIR)
    training = worker_alive(run_dir)
    if options.systems is None and options.data and is_pool_file(options.data):
        if not adapter:
            raise NoAdapterError(
                f"run {run_dir.name} has no fine-tuned adapter yet to answer the prompt pool",
                hint="evaluate the pool once training has kept an adapter, or see the base "
                "model's answers with --systems base_zero",
            )
        notes.append("a prompt pool: answered by the fine-tuned model (add base systems "
                     "with --systems)")  # fmt: skip
        systems = [TUNED]
    elif options.systems is None:
        systems = [BASE_ZERO, BASE_FEW] + ([TUNED] if adapter else [])
        if not adapter:
            notes.append("no fine-tuned adapter yet: evaluating the base model only")
    else:
        systems = list(dict.fromkeys(options.systems))
        if TUNED in systems and not adapter:
            raise NoAdapterError(
                f"run {run_dir.name} has no fine-tuned adapter yet",
                hint="the adapter appears at the first validation step; evaluate the base "
                "model meanwhile with --systems base_zero,base_few (or --baseline)",
            )
    if TUNED in systems and training:
        notes.append("training is still running: evaluating the adapter kept so far")
    if BASE_FEW in systems and options.few_shot == 0:
        systems.remove(BASE_FEW)
        notes.append("--few-shot 0: the few-shot system is the zero-shot one, skipped")
    if options.checkpoints or any(is_checkpoint_system(s) for s in systems):
        systems = _with_checkpoints(run_dir, systems, options.checkpoints, notes)
    if not systems:
        raise TunedeckError("nothing to evaluate", hint="choose systems with --systems")
    return systems, notes


def _with_checkpoints(
    run_dir: Path, systems: list[str], every: bool, notes: list[str]
) -> list[str]:
    """`systems` with the checkpoints asked for (all of them with `every`), step order.

    Raises:
        NoAdapterError: a checkpoint asked for by step is not saved (or not complete).
    """
    found = checkpoint_adapters(run_dir)
    asked = sorted(int(s.split("@", 1)[1]) for s in systems if is_checkpoint_system(s))
    missing = [step for step in asked if step not in found]
    if missing:
        saved = ", ".join(str(step) for step in sorted(found)) or "none"
        raise NoAdapterError(
            f"run {run_dir.name} has no complete checkpoint at step "
            f"{', '.join(map(str, missing))} (saved: {saved})",
            hint="checkpoints beyond the run's save_total_limit are deleted; "
            "--checkpoints evaluates every one that exists",
        )
    if every and not found:
        notes.append("no complete checkpoint with an adapter to evaluate")
    steps = sorted(set(asked) | (set(found) if every else set()))
    plain = [s for s in systems if not is_checkpoint_system(s)]
    return plain + [checkpoint_system(step) for step in steps]


def adapter_digest(path: Path) -> str:
    """Content hash of an adapter's files; retried while training swaps the directory."""
    for _ in range(20):
        try:
            return file_digest([p for p in path.iterdir() if p.suffix in (".json", ".safetensors")])
        except FileNotFoundError:
            time.sleep(0.1)  # adapter/ is replaced by two renames; it is back in a moment
    raise TunedeckError(f"the adapter {path} keeps disappearing", hint="try again")


@dataclass(frozen=True)
class ModelGroup:
    """Systems that share loaded weights: the base model, or the base plus one adapter."""

    name: str
    """`base`, `tuned` or `tuned@<step>`: the key of its loss and probe rows."""
    adapter: Path | None
    systems: tuple[str, ...]


def model_groups(run_dir: Path, systems: list[str]) -> list[ModelGroup]:
    """Group systems by the weights they need, base first (it needs no adapter load)."""
    groups = []
    base = tuple(s for s in systems if s in (BASE_ZERO, BASE_FEW))
    if base:
        groups.append(ModelGroup("base", None, base))
    if TUNED in systems:
        groups.append(ModelGroup(TUNED, run_dir / ADAPTER_DIR, (TUNED,)))
    found = checkpoint_adapters(run_dir) if any("@" in s for s in systems) else {}
    for system in systems:
        if "@" in system:
            step = int(system.split("@", 1)[1])
            groups.append(ModelGroup(system, found[step], (system,)))
    return groups
