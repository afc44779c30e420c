"""Data- and model-aware defaults: the recipe a preset run starts from.

A fixed recipe ignores how many optimizer steps the data gives and how large the model is:
124 examples at an effective batch of 16 give 8 steps an epoch, and a 135M model needs a
higher LoRA learning rate than an 8B one. Measured on the bundled tickets (bench/RESULTS.md,
"Sweep"), the old fixed recipe (lr 2e-4, batch 16, 2 epochs: 16 steps) left the model at
0.14 category accuracy; a recipe sized to the data reaches 0.9 and more.

The rules, and what grounds them:

- Learning rate from the model's width: 5e-4 x (2000 / hidden_size) ** p, with p = 0.781
  for Llama-like families and 0.0775 for Qwen. This is the fit of LoRA's best learning rate
  across model sizes published with "LoRA Without Regret" (Thinking Machines, 2025; the
  Tinker cookbook's `get_lr`), which also finds LoRA's best rate ~10x full fine-tuning's and
  independent of the rank when alpha is fixed (ours: alpha / r = 2, the same scale as their
  alpha 32 at r 16). It gives ~2.9e-4 for Llama-3.1-8B, close to the QLoRA paper's 2e-4 for
  7B-13B models, and ~1.3e-3 for SmolLM2-135M. QLoRA uses the same rate: the 4-bit base does
  not change what the adapter needs (QLoRA paper).
- Effective batch: small. "LoRA Without Regret" finds LoRA less tolerant of large batches
  than full fine-tuning; the QLoRA paper trains at 16. The recipe takes the largest power
  of two that still gives ~25 optimizer steps an epoch, between 2 and 16.
- Micro-batch: the memory lever, from the examples' length (a token budget per forward
  pass); accumulation makes up the rest of the effective batch.
- Epochs: enough passes for ~90 optimizer steps in all (so small data gets steps to learn),
  at most 3 (beyond that LoRA memorises); one pass when one pass already gives the steps.
  Early stopping on validation loss keeps the best checkpoint either way.
- Method on a GPU: LoRA (16-bit base) when the run fits in the GPU's free memory with room,
  QLoRA (4-bit base) when it does not. On a CPU: LoRA (4-bit weights are dequantised at
  every matmul there, which is slower).
- Intervals: about 8 validation points in the run, fewer when they would take over 12 %
  of its time; a checkpoint to resume from about every 10 minutes of training, at a
  multiple of the validation interval, within 3 % of the run's time (the kept adapter is
  saved at each better validation on its own, and the last step always saves).
- Which adapter to keep: for answers that carry a class label (`engine.data.labels`), the
  last one, after the cosine schedule has brought the learning rate to ~0, and no early
  stopping (the run keeps the last adapter, so it runs its planned steps; the overfitting
  warning still watches validation loss). Validation loss sums the whole answer, and a
  ~40-token reply outweighs a one-token label: on the tickets it was lowest at step 66 of
  93, where the adapter scored 0.69 on the 72 test tickets, against 0.79 for the last one
  (bench/RESULTS.md). Otherwise the adapter with the lowest validation loss, with early
  stopping.

A value the user set always wins: the caller names those fields in `keep`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config.advice import (
    TOKENS_PER_MICRO_BATCH,
    Device,
    optimizer_steps,
    recommended_batch,
    recommended_epochs,
    recommended_lr,
    recommended_micro_batch,
)
from engine.config.build import TrainConfig, with_overrides
from engine.config.estimate import (
    detect_device,
    estimate_run,
    seconds_per_checkpoint,
    validation_passes_every,
)
from engine.core.errors import TunedeckError
from engine.data.formats import Example
from engine.data.primary import decide_for_examples
from engine.data.token_lengths import percentile, utf8_size
from engine.model.resolve import (
    EMBEDDED,
    converted_dir,
    hub_model_config,
    is_complete_model_dir,
    resolve_model,
)
from engine.model.shapes import read_model_config

RECIPE_FIELDS = (
    "method",
    "learning_rate",
    "micro_batch_size",
    "gradient_accumulation",
    "epochs",
    "eval_steps",
    "save_steps",
    "logging_steps",
    "keep_adapter",
    "early_stopping_patience",
)
"""Fields the recipe chooses (unless the user set them), in the order it chooses them."""


@dataclass(frozen=True)
class RecipeInputs:
    """What the recipe looks at besides the config."""

    n_train: int
    """Training examples (after the split)."""
    p95_tokens: int | None = None
    """95th-percentile example length in tokens (None: unknown)."""
    model_config: Mapping[str, Any] | None = None
    """The model's config.json (None: not on disk yet; the learning rate falls back)."""
    device: Device = "cpu"
    free_gpu_bytes: int | None = None
    """Free memory of one GPU, when training on CUDA."""
    n_val: int | None = None
    """Validation examples (None: not split yet; about an eighth of n_train is assumed)."""
    label_key: str | None = None
    """The answers' class label (`decide_for_examples`): its JSON key, "" for the whole
    answer; None when they carry none."""


@dataclass(frozen=True)
class Choice:
    """One value the recipe chose, and why, in a line a user can read."""

    field: str
    value: Any
    reason: str


@dataclass(frozen=True)
class Recipe:
    """A config with the recipe's values applied, and the choices that made it."""

    config: TrainConfig
    choices: tuple[Choice, ...]

    def reasons(self) -> dict[str, str]:
        """Field -> reason, for the fields the recipe chose."""
        return {c.field: c.reason for c in self.choices}


def choose_recipe(cfg: TrainConfig, inputs: RecipeInputs, keep: Collection[str] = ()) -> Recipe:
    """Apply the recipe to `cfg`, leaving the fields in `keep` (the user's) as they are.

    Args:
        cfg: the config so far (a preset with the user's values).
        inputs: the data, the model and the hardware.
        keep: fields the user set; the recipe never changes them.
    """
    keep = set(keep)
    choices: list[Choice] = []

    def choose(name: str, value: Any, reason: str) -> None:
        nonlocal cfg
        if name in keep:
            return
        choices.append(Choice(name, value, reason))
        if getattr(cfg, name) != value:
            cfg = with_overrides(cfg, **{name: value})

    method = _choose_method(cfg, inputs)
    if method is not None:
        choose("method", *method)
    choose("learning_rate", *recommended_lr(inputs.model_config))
    _choose_batch(cfg, inputs, keep, choose)
    if cfg.max_steps is None:
        per_epoch, _ = optimizer_steps(cfg, max(inputs.n_train, 1))
        choose("epochs", *recommended_epochs(per_epoch))
    for name, value, reason in _intervals(cfg, inputs):
        choose(name, value, reason)
    for name, value, reason in _kept_adapter(inputs.label_key):
        choose(name, value, reason)
    return Recipe(cfg, tuple(choices))


PATIENCE = TrainConfig().early_stopping_patience
"""The config's own default patience, which the recipe names when it keeps early stopping."""


def _kept_adapter(label_key: str | None) -> list[tuple[str, Any, str]]:
    """keep_adapter and early stopping: the last adapter for labels, else the best one."""
    if label_key is None:
        return [
            ("keep_adapter", "best", "the lowest validation loss: it follows the whole answer"),
            (
                "early_stopping_patience",
                PATIENCE,
                f"stop after {PATIENCE} validations without a better loss",
            ),
        ]
    label = "the answer" if label_key == "" else f"the answers' {label_key!r}"
    return [
        ("keep_adapter", "last", f"{label} is a label: validation loss follows the rest of "
         "the answer, so the last adapter, at the end of the decay, is kept"),
        ("early_stopping_patience", None, "the run keeps its last adapter, so it runs its "
         "planned steps (the overfitting warning stays)"),
    ]  # fmt: skip


def _choose_batch(cfg: TrainConfig, inputs: RecipeInputs, keep: set[str], choose: Any) -> None:
    """Micro-batch and accumulation for the recommended effective batch."""
    batch, why = recommended_batch(inputs.n_train)
    per_process = max(batch // cfg.num_processes, 1)
    if "micro_batch_size" in keep and "gradient_accumulation" in keep:
        return
    if "micro_batch_size" in keep:
        accumulation = max(per_process // cfg.micro_batch_size, 1)
        choose("gradient_accumulation", accumulation, f"effective batch {batch}: {why}")
        return
    if "gradient_accumulation" in keep:
        micro = max(per_process // cfg.gradient_accumulation, 1)
        choose("micro_batch_size", micro, f"effective batch {batch}: {why}")
        return
    micro = recommended_micro_batch(per_process, inputs.p95_tokens, inputs.device)
    length = f"{inputs.p95_tokens}-token examples (p95)" if inputs.p95_tokens else "examples"
    budget = TOKENS_PER_MICRO_BATCH[inputs.device]
    choose("micro_batch_size", micro, f"{length} in a ~{budget}-token forward pass")
    choose("gradient_accumulation", max(per_process // micro, 1), f"effective batch {batch}: {why}")


def _choose_method(cfg: TrainConfig, inputs: RecipeInputs) -> tuple[str, str] | None:
    """LoRA when the run fits the GPU in 16-bit with room, QLoRA when not (None: no say)."""
    if inputs.device == "cpu":
        return "lora", "on a CPU 4-bit weights are dequantised at every step: LoRA is faster"
    if inputs.model_config is None or inputs.free_gpu_bytes is None:
        return None
    lora = with_overrides(cfg, method="lora")
    mean = float(inputs.p95_tokens or 512) / 2
    est = estimate_run(
        lora, dict(inputs.model_config), inputs.n_train, mean, inputs.p95_tokens, "cuda",
        inputs.free_gpu_bytes,
    )  # fmt: skip
    if est.fits is None or est.memory is None:
        return None
    gib = est.memory.total / 2**30
    free = inputs.free_gpu_bytes / 2**30
    if est.fits:
        return "lora", f"the 16-bit model fits the GPU ({gib:.1f} of {free:.0f} GiB free)"
    return "qlora", f"LoRA would need {gib:.1f} GiB of {free:.0f} GiB free: 4-bit base (QLoRA)"


VALIDATION_POINTS = 8
"""Validation losses a run shows: enough to see the curve turn, few enough to stay cheap."""
VALIDATION_SHARE = 0.12
"""The most of a run's time the recipe lets validation take (fewer points beyond it)."""
CHECKPOINT_SHARE = 0.03
"""The most of a run's time the recipe lets checkpoints take: with validation, at most
~15 % of the run is spent outside optimizer steps."""
CHECKPOINT_EVERY_S = 600.0
"""Training time between checkpoints: a crash or kill -9 loses at most about this much."""
UNKNOWN_COST_EVALS_PER_CHECKPOINT = 4
"""Without a time estimate (model unknown): a checkpoint every 4th validation."""


def _intervals(cfg: TrainConfig, inputs: RecipeInputs) -> list[tuple[str, int, str]]:
    """eval_steps, save_steps and logging_steps, each with its reason.

    About VALIDATION_POINTS validations, fewer when they would take more than
    VALIDATION_SHARE of the run; a checkpoint (for resume) at a multiple of eval_steps,
    about every CHECKPOINT_EVERY_S of training but within CHECKPOINT_SHARE of the run.
    The kept adapter needs no checkpoint: it is saved on its own at each better validation,
    and the Trainer always saves the last step.
    """
    _per_epoch, total = optimizer_steps(cfg, max(inputs.n_train, 1))
    costs = _run_costs(cfg, inputs, total)
    points, eval_why = (
        VALIDATION_POINTS,
        f"about {VALIDATION_POINTS} validation points over the run",
    )
    if costs is not None:
        train_s, per_validation, _per_save = costs

        def passes(n: int) -> int:
            return validation_passes_every(max(1, total // n), total)

        while points > 2 and passes(points) * per_validation > VALIDATION_SHARE * train_s:
            points -= 1
        if points < VALIDATION_POINTS:
            eval_why = (f"{points} validation points over the run: more would take over "
                        f"{VALIDATION_SHARE:.0%} of its time")  # fmt: skip
    every = max(1, total // points)
    evals = max(total // every, 1)
    if costs is None:
        k = UNKNOWN_COST_EVALS_PER_CHECKPOINT
        save_why = f"every {UNKNOWN_COST_EVALS_PER_CHECKPOINT}th validation (run time unknown)"
    else:
        train_s, _per_validation, per_save = costs
        step_s = train_s / max(total, 1)
        k = max(1, int(CHECKPOINT_EVERY_S // max(step_s * every, 1e-9)))
        while k < evals and (evals // k + 1) * per_save > CHECKPOINT_SHARE * train_s:
            k += 1
        minutes = step_s * every * k / 60
        save_why = f"about every {minutes:.0f} min of training" if minutes >= 1 else (
            f"about every {step_s * every * k:.0f} s of training")  # fmt: skip
    save = min(every * k, max(total, 1))
    if save >= total:
        save_reason = "the last step only: the run is short (the kept adapter is saved on its own)"
    else:
        save_reason = f"a checkpoint to resume from {save_why}; the last step always saves"
    return [
        ("eval_steps", every, f"{eval_why} (every {every} steps)"),
        ("save_steps", save, save_reason),
        ("logging_steps", max(1, every // 4), "about 4 training-loss points between validations"),
    ]


def _run_costs(
    cfg: TrainConfig, inputs: RecipeInputs, total: int
) -> tuple[float, float, float] | None:
    """(seconds of training steps, seconds per validation, seconds per checkpoint) as the
    estimate sees them; None when the model is unknown."""
    if inputs.model_config is None:
        return None
    n_val = inputs.n_val if inputs.n_val is not None else max(1, round(inputs.n_train / 8))
    mean = float(inputs.p95_tokens or 512) / 2
    probe = with_overrides(cfg, eval_steps=1, save_steps=max(total, 1))
    est = estimate_run(probe, dict(inputs.model_config), inputs.n_train, mean,
                       inputs.p95_tokens, inputs.device, n_val_examples=n_val)  # fmt: skip
    if est.seconds is None or est.trainable_params is None:
        return None
    validation = est.validation_seconds or 0.0
    train_s = est.seconds - validation - (est.checkpoint_seconds or 0.0)
    per_validation = validation / max(est.evaluations, 1)
    return train_s, per_validation, seconds_per_checkpoint(est.trainable_params)


# ---------------------------------------------------------------------------
# What a new run knows: its split, the model on disk, the machine
# ---------------------------------------------------------------------------

CHARS_PER_TOKEN = 4.0
"""Rough average for English text, for sizing micro-batches before tokens are counted."""


def approximate_p95_tokens(examples: Sequence[Example]) -> int | None:
    """The 95th-percentile example length in tokens, guessed from its characters."""
    if not examples:
        return None
    sizes = sorted(utf8_size(e) for e in examples)
    return math.ceil(percentile(sizes, 0.95) / CHARS_PER_TOKEN)


def local_model_config(model: str, *, prepare_embedded: bool = False) -> dict[str, Any] | None:
    """The model's config.json when it is on disk (no network); None when it is not.

    Args:
        prepare_embedded: convert an embedded model that is not converted yet (once, ~20 s;
            the worker would do it anyway) so that its size is known.
    """
    path = Path(model).expanduser()
    try:
        if path.is_dir() and (path / "config.json").is_file():
            return read_model_config(path)
        name = path.stem if path.suffix == ".gguf" else model
        cached = converted_dir(name)
        if is_complete_model_dir(cached):
            return read_model_config(cached)
        if prepare_embedded and model in EMBEDDED:
            return read_model_config(resolve_model(model))
        if "/" in model and not path.exists():  # a hub id: its cached config.json alone
            return hub_model_config(model, download=False)
    except (TunedeckError, OSError, ValueError):
        return None
    return None


def recipe_for_run(
    cfg: TrainConfig, train: Sequence[Example], keep: Collection[str], n_val: int | None = None
) -> Recipe:
    """The recipe for a run about to be created, from its split and this machine."""
    device, free = detect_device()
    inputs = RecipeInputs(
        n_train=len(train),
        n_val=n_val,
        p95_tokens=approximate_p95_tokens(train),
        model_config=local_model_config(cfg.model, prepare_embedded=True),
        device=device,
        free_gpu_bytes=free,
        label_key=label_key(train),
    )
    return choose_recipe(cfg, inputs, keep)


def label_key(examples: Sequence[Example]) -> str | None:
    """The training answers' class label key ("" for the whole answer), or None: the
    primary-metric decision that evaluation makes and stores (engine.data.primary)."""
    primary = decide_for_examples(examples)
    return primary.key if primary.kind == "label" else None
