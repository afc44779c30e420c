"""Advice on a valid config: the rules of a good recipe, and warnings worth a second look.

The rules (`recommended_*`) size the learning rate to the model and the batch and epochs to
the data; `engine.config.recipe` applies them to a preset run, and the warnings here measure a
config against them. Why each rule is what it is: engine/config/recipe.py's docstring and
bench/RESULTS.md ("Sweep").

A warning never blocks a run: the values are legal, just often a mistake (too few optimizer
steps to learn, too many epochs on a tiny dataset, a learning rate far from the model's).
The wizard shows them next to the settings; the CLI prints them before starting. Import
the warnings from `engine.config.build`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from engine.config.fields import ConfigError
from engine.config.schema import TrainConfig

Device = Literal["cpu", "cuda"]

# Thresholds, with the reason each one exists.
MAX_EPOCHS = 3  # beyond ~3 passes LoRA starts memorising examples (val loss rises)
HIGH_LR = 5e-4  # model unknown: LoRA is usually trained at 1e-4..3e-4; above this often unstable
VERY_HIGH_LR = 1e-3  # model unknown: above this it usually diverges
LOW_LR = 1e-5  # below this a LoRA adapter barely moves in a few hundred steps
LR_FACTOR_LOW = 3.0  # model known: below a third of its LoRA rate the adapter learns slowly
LR_FACTOR_HIGH = 3.0  # model known: above 3x its rate LoRA turns unstable
LR_FACTOR_VERY_HIGH = 8.0  # model known: above 8x it usually diverges
MIN_STEPS = 40  # fewer optimizer steps than this rarely teach a behaviour (sweep: 16 did not)
FEW_STEPS_PER_EPOCH = 12  # a batch giving fewer steps an epoch is large for the data
MIN_EXAMPLES = 50  # fewer examples than this are memorised rather than generalised
VAL_FRACTION_RANGE = (0.1, 0.2)  # smaller: noisy val loss; larger: training data wasted
CPU_LONG_SEQ = 2048  # attention cost grows with length: CPU runs become hours


LR_AT_2000 = 5e-4
"""LoRA's best learning rate for a model of hidden size 2000 (Tinker: 5e-5 x 10 for LoRA)."""
LR_EXPONENT = {"qwen2": 0.0775, "qwen3": 0.0775, "qwen2_moe": 0.0775, "qwen3_moe": 0.0775}
"""How fast the best rate falls with width, by model_type; others follow Llama's 0.781."""
LLAMA_EXPONENT = 0.781
LR_RANGE = (5e-5, 2e-3)
"""The recipe never goes outside this (very wide or very narrow models)."""
FALLBACK_LR = 2e-4
"""When the model's width is unknown: the middle of the usual LoRA range."""
STEPS_PER_EPOCH = 25
"""The batch is chosen so that an epoch gives at least this many optimizer steps."""
BATCH_RANGE = (2, 16)
TARGET_STEPS = 90
"""Optimizer steps a run should take in all for a LoRA adapter to learn a behaviour."""
TOKENS_PER_MICRO_BATCH = {"cpu": 2048, "cuda": 8192}
"""Tokens of one forward pass the recipe plans for (the longest examples, p95)."""
MAX_MICRO_BATCH = {"cpu": 4, "cuda": 16}


def recommended_lr(model_config: Mapping[str, Any] | None) -> tuple[float, str]:
    """LoRA's learning rate for a model, and the reason, from its width and family."""
    hidden = _hidden_size(model_config)
    if hidden is None:
        return FALLBACK_LR, "the model's size is unknown until it is prepared: the usual LoRA rate"
    model_type = str((model_config or {}).get("model_type", ""))
    exponent = LR_EXPONENT.get(model_type, LLAMA_EXPONENT)
    lr = LR_AT_2000 * (2000 / hidden) ** exponent
    low, high = LR_RANGE
    lr = float(f"{min(max(lr, low), high):.2g}")
    family = "Qwen" if model_type in LR_EXPONENT else "Llama-like"
    return lr, (
        f"LoRA's best rate for a {family} model {hidden} wide (~10x full fine-tuning's; "
        "LoRA Without Regret)"
    )


def _hidden_size(model_config: Mapping[str, Any] | None) -> int | None:
    if not model_config:
        return None
    text = model_config.get("text_config")
    for source in (model_config, text if isinstance(text, Mapping) else {}):
        for key in ("hidden_size", "n_embd", "d_model"):
            value = source.get(key)
            if isinstance(value, int) and value > 0:
                return value
    return None


def recommended_batch(n_train: int) -> tuple[int, str]:
    """The effective batch for `n_train` examples, and the reason."""
    low, high = BATCH_RANGE
    fit = max(n_train // STEPS_PER_EPOCH, 1)
    batch = min(max(2 ** int(math.log2(fit)), low), high)
    per_epoch = math.ceil(n_train / batch)
    if batch == high:
        why = f"LoRA learns worse with large batches; {per_epoch} steps an epoch"
    else:
        why = f"{n_train} examples: small batches give {per_epoch} optimizer steps an epoch"
    return batch, why


def recommended_micro_batch(batch: int, p95_tokens: int | None, device: Device) -> int:
    """Examples per forward pass: as many of the effective batch as the token budget holds."""
    budget = TOKENS_PER_MICRO_BATCH[device]
    fits = budget // max(p95_tokens or 512, 1)
    micro = max(1, min(batch, MAX_MICRO_BATCH[device], fits))
    return 2 ** int(math.log2(micro))


def recommended_epochs(per_epoch: int) -> tuple[float, str]:
    """Passes over the data for ~TARGET_STEPS optimizer steps, 1 to MAX_EPOCHS."""
    epochs = min(max(math.ceil(TARGET_STEPS / max(per_epoch, 1)), 1), MAX_EPOCHS)
    total = epochs * per_epoch
    if epochs == MAX_EPOCHS and total < TARGET_STEPS:
        return float(epochs), f"{total} steps; more passes would memorise (early stopping watches)"
    if epochs == 1:
        return 1.0, f"one pass gives {per_epoch} optimizer steps, enough to learn"
    return float(epochs), f"{total} optimizer steps in all: enough to learn, not to memorise"


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
    device: Device | None = None,
    model_config: Mapping[str, Any] | None = None,
) -> list[str]:
    """Things in a valid config that are often a mistake, as sentences for the user.

    Args:
        cfg: the config to check.
        n_examples: training examples (after the split), when known.
        device: where the run will train, when known.
        model_config: the model's config.json, when on disk: the learning rate is then
            judged against the model's own LoRA rate instead of a generic range.
    """
    warnings = _hyperparameter_warnings(cfg)
    warnings += _learning_rate_warnings(cfg, model_config)
    warnings += _split_warnings(cfg)
    if n_examples is not None:
        warnings += _dataset_warnings(cfg, n_examples)
    if device == "cpu":
        warnings += _cpu_warnings(cfg)
    return warnings


def _split_warnings(cfg: TrainConfig) -> list[str]:
    out = []
    if cfg.data.source is not None:
        low, high = VAL_FRACTION_RANGE
        fraction = cfg.data.val_fraction
        if fraction < low:
            out.append(
                f"data.val_fraction = {fraction:g}: a small validation set gives a noisy "
                f"validation loss ({low:g}-{high:g} is typical)"
            )
        elif fraction > high:
            out.append(
                f"data.val_fraction = {fraction:g} holds back much of the training data "
                f"({low:g}-{high:g} is typical)"
            )
    if cfg.data.train is not None and cfg.data.val is None:
        out.append(
            "data.train without data.val: no validation loss, so no early stopping and no "
            "sign of overfitting (set data.val, or use data.source to split one file)"
        )
    return out


def _hyperparameter_warnings(cfg: TrainConfig) -> list[str]:
    out = []
    if cfg.epochs > MAX_EPOCHS and cfg.max_steps is None:
        out.append(
            f"epochs = {cfg.epochs:g}: more than {MAX_EPOCHS} passes risk overfitting (the "
            "model memorises the examples); keep early stopping on and watch validation loss"
        )
    ratio = cfg.lora.alpha / cfg.lora.r
    if not 0.5 <= ratio <= 4:
        out.append(
            f"lora.alpha / lora.r = {ratio:g}: the update is scaled unusually "
            "(alpha = r to 2 x r is common)"
        )
    if cfg.warmup_ratio > 0.2:
        out.append(f"warmup_ratio = {cfg.warmup_ratio:g}: a long warmup (0.03-0.1 is typical)")
    return out


def _learning_rate_warnings(cfg: TrainConfig, model_config: Mapping[str, Any] | None) -> list[str]:
    """The learning rate against the model's own LoRA rate (a generic range if unknown)."""
    lr, method = cfg.learning_rate, cfg.method.upper()
    if lr < LOW_LR:
        return [f"learning_rate = {lr:g} is very low: the adapter will barely change"]
    if _hidden_size(model_config) is None:
        if lr > VERY_HIGH_LR:
            return [
                f"learning_rate = {lr:g} is very high for LoRA: training will likely "
                "diverge (1e-4 to 3e-4 is typical)"
            ]
        if lr > HIGH_LR:
            return [
                f"learning_rate = {lr:g} is high for LoRA and may be unstable "
                "(1e-4 to 3e-4 is typical)"
            ]
        return []
    best, _ = recommended_lr(model_config)
    size = f"a model {_hidden_size(model_config)} wide"
    if lr > best * LR_FACTOR_VERY_HIGH:
        return [
            f"learning_rate = {lr:g} is very high for {method} on {size}: training will "
            f"likely diverge (about {best:g} suits it)"
        ]
    if lr > best * LR_FACTOR_HIGH:
        return [
            f"learning_rate = {lr:g} is high for {method} on {size} and may be unstable "
            f"(about {best:g} suits it)"
        ]
    if lr < best / LR_FACTOR_LOW:
        return [
            f"learning_rate = {lr:g} is low for {method} on {size}: the adapter will learn "
            f"slowly and may not learn the task at all (about {best:g} suits it)"
        ]
    return []


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
    else:
        out += _step_warnings(cfg, n_examples)
    _per_epoch, total = optimizer_steps(cfg, max(n_examples, 1))
    if total < cfg.eval_steps:
        out.append(
            f"the run has {total} optimizer steps but eval_steps = {cfg.eval_steps}: "
            "no validation loss until the end; lower eval_steps"
        )
    return out


def _step_warnings(cfg: TrainConfig, n_examples: int) -> list[str]:
    """Too few optimizer steps to learn; a batch that is large for the data."""
    out = []
    per_epoch, total = optimizer_steps(cfg, max(n_examples, 1))
    batch = cfg.effective_batch_size
    suggested, _ = recommended_batch(n_examples)
    if per_epoch < FEW_STEPS_PER_EPOCH and batch > suggested:
        out.append(
            f"an optimizer step takes {batch} of {n_examples} examples: only {per_epoch} "
            f"steps an epoch, and LoRA learns worse with large batches (about {suggested} "
            "suits this data: lower gradient_accumulation or micro_batch_size)"
        )
    if total < MIN_STEPS:
        out.append(
            f"the run takes only {total} optimizer steps: too few for the adapter to learn "
            f"the task (aim for {MIN_STEPS}-{TARGET_STEPS}: a smaller batch or more epochs)"
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
