"""Advice on a valid config: warnings worth a second look, and a suggested max_seq_len.

A warning never blocks a run: the values are legal, just often a mistake (too many epochs
on a tiny dataset, a learning rate that makes LoRA diverge). The wizard shows them next to
the settings; the CLI prints them before starting. Import these from `engine.config`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from engine.config_fields import ConfigError
from engine.config_schema import TrainConfig

# Thresholds, with the reason each one exists.
MAX_EPOCHS = 3  # beyond ~3 passes LoRA starts memorising examples (val loss rises)
HIGH_LR = 5e-4  # LoRA is usually trained at 1e-4..3e-4; above this it often turns unstable
VERY_HIGH_LR = 1e-3  # above this it usually diverges
LOW_LR = 1e-5  # below this a LoRA adapter barely moves in a few hundred steps
MIN_EXAMPLES = 50  # fewer examples than this are memorised rather than generalised
VAL_FRACTION_RANGE = (0.1, 0.2)  # smaller: noisy val loss; larger: training data wasted
CPU_LONG_SEQ = 2048  # attention cost grows with length: CPU runs become hours


def optimizer_steps(cfg: TrainConfig, n_sequences: int) -> tuple[int, int]:
    """(steps per epoch, total optimizer steps), counted the way transformers' Trainer does.

    Args:
        n_sequences: training sequences per epoch (examples; packed sequences with packing).
    """
    micro_batches = math.ceil(n_sequences / (cfg.micro_batch_size * cfg.num_processes))
    per_epoch = max(math.ceil(micro_batches / cfg.gradient_accumulation), 1)
    total = cfg.max_steps if cfg.max_steps is not None else math.ceil(cfg.epochs * per_epoch)
    return per_epoch, total


def config_warnings(
    cfg: TrainConfig,
    n_examples: int | None = None,
    *,
    device: Literal["cpu", "cuda"] | None = None,
) -> list[str]:
    """Things in a valid config that are often a mistake, as sentences for the user.

    Args:
        cfg: the config to check.
        n_examples: training examples (after the split), when known.
        device: where the run will train, when known.
    """
    warnings = _hyperparameter_warnings(cfg)
    if cfg.data.source is not None:
        low, high = VAL_FRACTION_RANGE
        fraction = cfg.data.val_fraction
        if fraction < low:
            warnings.append(
                f"data.val_fraction = {fraction:g}: a small validation set gives a noisy "
                f"validation loss ({low:g}-{high:g} is typical)"
            )
        elif fraction > high:
            warnings.append(
                f"data.val_fraction = {fraction:g} holds back much of the training data "
                f"({low:g}-{high:g} is typical)"
            )
    if cfg.data.train is not None and cfg.data.val is None:
        warnings.append(
            "data.train without data.val: no validation loss, so no early stopping and no "
            "sign of overfitting (set data.val, or use data.source to split one file)"
        )
    if n_examples is not None:
        warnings += _dataset_warnings(cfg, n_examples)
    if device == "cpu":
        warnings += _cpu_warnings(cfg)
    return warnings


def _hyperparameter_warnings(cfg: TrainConfig) -> list[str]:
    out = []
    if cfg.epochs > MAX_EPOCHS and cfg.max_steps is None:
        out.append(
            f"epochs = {cfg.epochs:g}: more than {MAX_EPOCHS} passes risk overfitting (the "
            "model memorises the examples); keep early stopping on and watch validation loss"
        )
    lr = cfg.learning_rate
    if lr > VERY_HIGH_LR:
        out.append(
            f"learning_rate = {lr:g} is very high for LoRA: training will likely "
            "diverge (1e-4 to 3e-4 is typical)"
        )
    elif lr > HIGH_LR:
        out.append(
            f"learning_rate = {lr:g} is high for LoRA and may be unstable (1e-4 to 3e-4 is typical)"
        )
    elif lr < LOW_LR:
        out.append(f"learning_rate = {lr:g} is very low: the adapter will barely change")
    ratio = cfg.lora.alpha / cfg.lora.r
    if not 0.5 <= ratio <= 4:
        out.append(
            f"lora.alpha / lora.r = {ratio:g}: the update is scaled unusually "
            "(alpha = r to 2 x r is common)"
        )
    if cfg.early_stopping_patience is not None and cfg.save_steps % cfg.eval_steps:
        out.append(
            f"save_steps ({cfg.save_steps}) is not a multiple of eval_steps "
            f"({cfg.eval_steps}): the best evaluation may have no checkpoint"
        )
    if cfg.warmup_ratio > 0.2:
        out.append(f"warmup_ratio = {cfg.warmup_ratio:g}: a long warmup (0.03-0.1 is typical)")
    return out


def _dataset_warnings(cfg: TrainConfig, n_examples: int) -> list[str]:
    out = []
    if n_examples < MIN_EXAMPLES:
        out.append(
            f"only {n_examples} training examples: the model will likely memorise them "
            f"rather than learn the pattern (aim for a few hundred, at least {MIN_EXAMPLES})"
        )
    r = cfg.lora.r
    if (r > 32 and n_examples < 1000) or (r > 16 and n_examples < 100):
        out.append(
            f"lora.r = {r} is a large adapter for {n_examples} examples: it may memorise "
            "them (r = 8-16 is plenty for small datasets)"
        )
    if cfg.effective_batch_size > n_examples > 0:
        out.append(
            f"an optimizer step takes {cfg.effective_batch_size} examples but there are only "
            f"{n_examples}: lower micro_batch_size or gradient_accumulation"
        )
    _per_epoch, total = optimizer_steps(cfg, max(n_examples, 1))
    if total < cfg.eval_steps:
        out.append(
            f"the run has {total} optimizer steps but eval_steps = {cfg.eval_steps}: "
            "no validation loss until the end; lower eval_steps"
        )
    return out


def _cpu_warnings(cfg: TrainConfig) -> list[str]:
    out = []
    if cfg.max_seq_len > CPU_LONG_SEQ:
        out.append(
            f"max_seq_len = {cfg.max_seq_len} on CPU: long sequences are slow; use the "
            "suggested length (the p99 of your examples)"
        )
    if cfg.method == "qlora":
        out.append(
            "QLoRA on CPU dequantises the 4-bit weights at every step: slower than LoRA "
            "unless the model does not fit in memory otherwise"
        )
    return out


def suggest_intervals(cfg: TrainConfig, n_sequences: int, evaluations: int = 8) -> dict[str, int]:
    """eval / save / logging steps giving about `evaluations` validation points in the run.

    The defaults (evaluate every 20 steps) suit datasets of a few thousand examples; a
    small dataset would see no validation loss before the end. Apply the result with
    `with_overrides(cfg, **suggest_intervals(cfg, n))`.

    Args:
        n_sequences: training sequences per epoch (examples, or packed sequences).
    """
    _per_epoch, total = optimizer_steps(cfg, max(n_sequences, 1))
    every = max(1, total // max(evaluations, 1))
    return {"eval_steps": every, "save_steps": every, "logging_steps": max(1, every // 4)}


def suggest_max_seq_len(
    token_lengths: Sequence[int], max_position_embeddings: int | None = None
) -> int:
    """The 99th-percentile token length rounded up to a multiple of 64 (at least 64).

    The 1% longest examples get truncated rather than making every batch long. Capped at
    `max_position_embeddings` (the model's context length) when given.

    Raises:
        ConfigError: no lengths to suggest from.
    """
    if not token_lengths:
        raise ConfigError("no examples to measure: cannot suggest max_seq_len")
    ordered = sorted(token_lengths)
    p99 = ordered[math.ceil(0.99 * len(ordered)) - 1]  # nearest-rank percentile
    suggestion = max(64, math.ceil(p99 / 64) * 64)
    if max_position_embeddings is not None:
        suggestion = min(suggestion, max_position_embeddings)
    return suggestion
