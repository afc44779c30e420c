"""Memory and time estimate of a run before it starts.

Everything is arithmetic on the model's config.json and the config (no torch), so the
wizard can show it as the user changes settings. The numbers are estimates, labelled so:

- Weights: lora holds the base in the compute dtype (bf16 = 2 bytes on GPU, fp32 = 4 on
  CPU); qlora stores the projections in NF4 (0.5 byte/param plus ~0.016 for the
  double-quantised block scales), and peft's prepare_model_for_kbit_training upcasts
  everything else (embeddings, head, norms) to fp32: 4 bytes (FSDP skips that step).
- Adapter, gradients and AdamW: 4 + 4 + 8 bytes per trainable parameter (peft keeps the
  adapter in fp32; AdamW's two moments are fp32).
- Activations, a rule of thumb per token and layer: the values kept for backward are about
  4*hidden + 2*q_dim + 2*kv_dim + 4*intermediate (norm inputs/outputs, q/k/v and attention
  output, the MLP's gate/up/activation/product), plus each adapter's dropout copy of its
  input and its rank-r projection. SDPA attention keeps no seq x seq matrix. With gradient
  checkpointing only each layer's input (hidden values) is kept, plus one layer recomputed.
- Logits: at most micro-batch x seq x vocab (training projects only trained positions:
  an upper bound) in the compute dtype, plus the loss's fp32 copy and log-softmax for one
  chunk of engine.model.loss.CHUNK_LOGITS values (the loss goes a chunk at a time).
- Time: FLOPs over an assumed throughput: the GPU's dense bf16 peak from GPU_PEAK_TFLOPS
  (its name from nvidia-smi) at GPU_UTILISATION, or a measured figure per CPU core.
  LoRA does ~4N FLOPs per token for N matmul weights (2N forward, 2N for the input
  gradients; the frozen weights get no gradient),
  6N with gradient checkpointing, plus attention (2 x seq x q_dim per layer forward, twice
  that backward) and the adapter's own 6 x trainable.

Longer than 400 lines: memory, time and the warnings are one model of a run (they share
the shapes, the token counts and the per-device figures), written out with its sources.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Literal

from engine.config.advice import optimizer_steps
from engine.config.build import TrainConfig, with_overrides
from engine.model.loss import CHUNK_LOGITS
from engine.model.shapes import (
    ModelShape,
    UnknownArchitectureError,
    lora_params,
    model_shape,
    read_model_config,
)

__all__ = ["MemoryEstimate", "RunEstimate", "estimate_run", "format_estimate", "read_model_config"]

Device = Literal["cpu", "cuda"]

NF4_BYTES_PER_PARAM = 0.5 + 1 / 64 + 4 / (64 * 256)
"""4-bit values + 8-bit absmax per 64-value block + an fp32 scale per 256 blocks."""
OVERHEAD_BYTES = {"cuda": 512 * 2**20, "cpu": 384 * 2**20}
"""CUDA context and allocator on a GPU; Python, torch and transformers in RAM on CPU."""
FIT_MARGIN = 0.9
"""Share of the free memory a run may plan to use: fragmentation and spikes need the rest."""
CPU_FLOPS_PER_CORE = 40e9
"""Measured on a 2-core x86 box: LoRA r=16 on a 135M Llama in fp32 ran at ~80 GFLOP/s."""
GPU_UTILISATION = 0.35
"""Model FLOPs utilisation of LoRA training at small batches (typical, not measured here)."""
GPU_PEAK_TFLOPS: dict[str, float] = {
    "H200": 989, "H100": 989, "GH200": 989, "A100": 312, "L40S": 362, "L40": 181,
    "A6000": 155, "A10G": 70, "A10": 125, "L4": 121, "4090": 165, "3090": 71,
    "V100": 125, "T4": 65,
}  # fmt: skip
"""Dense bf16/fp16 tensor TFLOP/s from the vendors' data sheets (SXM parts; V100 and T4
have no bf16: their fp16 figure, which tunedeck uses there). Matched in this order
against the GPU's name, so "A100" does not take an "A10G"."""
GPU_FLOPS = 200e12 * GPU_UTILISATION
"""An unrecognised GPU: a 200 TFLOP/s bf16 part at GPU_UTILISATION."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory of one training process, by what it holds, in bytes."""

    weights: int
    """The frozen base model."""
    adapter: int
    """The LoRA weights (fp32)."""
    gradients: int
    """Gradients of the adapter (fp32)."""
    optimizer: int
    """AdamW's two moments per trainable parameter (fp32)."""
    activations: int
    """Values kept for the backward pass of one micro-batch."""
    logits: int
    """Output logits and the loss's log-softmax for one micro-batch."""
    overhead: int
    """Runtime overhead (CUDA context, or the Python process on CPU)."""

    @property
    def total(self) -> int:
        return (
            self.weights + self.adapter + self.gradients + self.optimizer
            + self.activations + self.logits + self.overhead
        )  # fmt: skip


@dataclass(frozen=True)
class RunEstimate:
    """What a run will cost, computed before it starts. All figures are estimates."""

    method: str
    device: Device
    total_params: int | None
    """Parameters of the base model (None: unknown architecture)."""
    trainable_params: int | None
    """Parameters of the LoRA adapter."""
    memory: MemoryEstimate | None
    """Peak memory by component (None: unknown architecture)."""
    free_gpu_bytes: int | None
    """Free memory the estimate was compared with, when given."""
    fits: bool | None
    """Whether the peak fits in FIT_MARGIN of the free memory (None: not compared)."""
    peak_seq_len: int
    """Sequence length assumed for the largest micro-batch."""
    steps_per_epoch: int
    total_steps: int
    """Optimizer steps of the whole run (max_steps when set)."""
    train_tokens: int
    """Tokens the run pushes through the model for training."""
    flops: float | None
    flops_per_s: float
    """Assumed throughput of one device."""
    seconds: float | None
    """Estimated wall time of training, validation and checkpoints."""
    validation_seconds: float | None = None
    """Of `seconds`: the validation passes (None: no validation set or unknown model)."""
    checkpoint_seconds: float | None = None
    """Of `seconds`: writing checkpoints (adapter + optimizer state) and kept adapters."""
    evaluations: int = 0
    """Validation passes in the run (the last step's included)."""
    checkpoints: int = 0
    """Checkpoints written in the run (the last step's included)."""
    notes: tuple[str, ...] = ()
    """Assumptions and gaps worth telling the user."""
    advice: tuple[str, ...] = ()
    """Changes that would make a run fit, when it does not."""


def gpu_flops_per_s(name: str | None) -> float:
    """Assumed training throughput of a GPU by its name ("NVIDIA H100 80GB HBM3")."""
    upper = (name or "").upper()
    for model in sorted(GPU_PEAK_TFLOPS, key=len, reverse=True):  # "A10G" before "A10"
        if f" {model}" in f" {upper}":  # "NVIDIA A100-SXM4-80GB", "GeForce RTX 4090"
            return GPU_PEAK_TFLOPS[model] * 1e12 * GPU_UTILISATION
    return GPU_FLOPS


def default_flops_per_s(device: Device) -> float:
    """Assumed throughput: the GPU's (by name) on CUDA, CPU_FLOPS_PER_CORE x cores on CPU."""
    if device == "cuda":
        return gpu_flops_per_s(detect_gpu_name())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return CPU_FLOPS_PER_CORE * min(cores or 1, 32)  # scaling flattens beyond a socket


def compute_bytes(cfg: TrainConfig, device: Device) -> int:
    """Bytes per value of the compute dtype: bf16 on GPU unless turned off, else fp32."""
    return 2 if cfg.bf16 == "on" or (cfg.bf16 == "auto" and device == "cuda") else 4


def estimate_memory(
    cfg: TrainConfig, shape: ModelShape, seq_len: int, device: Device
) -> MemoryEstimate:
    """Peak memory of one process training `cfg` on micro-batches of `seq_len` tokens."""
    dtype_bytes = compute_bytes(cfg, device)
    total = shape.total_params
    if cfg.method == "qlora":
        quantised = shape.linear_params
        # prepare_model_for_kbit_training upcasts the rest to fp32 (not under FSDP).
        rest = dtype_bytes if cfg.wants_fsdp(device) else 4
        weights = quantised * NF4_BYTES_PER_PARAM + (total - quantised) * rest
    else:
        weights = total * dtype_bytes
    trainable, _ = lora_params(shape, cfg.lora.r, cfg.lora.target_modules)
    tokens = cfg.micro_batch_size * seq_len
    h, i = shape.hidden_size, shape.intermediate_size
    per_layer = 4 * h + 2 * shape.q_dim + 2 * shape.kv_dim + 4 * i
    per_layer += _adapter_activations(cfg, shape)
    if cfg.gradient_checkpointing:
        values = tokens * (shape.num_layers * h + per_layer)
    else:
        values = tokens * shape.num_layers * per_layer
    logit_values = tokens * shape.vocab_size
    # Kept logits in the compute dtype; the loss's fp32 copy (half precision only) and
    # log-softmax exist for one chunk at a time (engine.model.loss.summed_cross_entropy).
    working = min(logit_values, CHUNK_LOGITS) * (8 if dtype_bytes == 2 else 4)
    shards = cfg.num_processes if cfg.wants_fsdp(device) else 1  # FSDP: 1/n per GPU
    return MemoryEstimate(
        weights=int(weights) // shards,
        adapter=4 * trainable // shards,
        gradients=4 * trainable // shards,
        optimizer=8 * trainable // shards,
        activations=values * dtype_bytes,
        logits=logit_values * dtype_bytes + working,
        overhead=OVERHEAD_BYTES[device],
    )


def _adapter_activations(cfg: TrainConfig, shape: ModelShape) -> int:
    """Values per token and layer the adapters keep: dropout copies and rank-r outputs."""
    layers = shape.linear_layers()
    targets = layers if cfg.lora.target_modules == ("all-linear",) else cfg.lora.target_modules
    values = 0
    for name in targets:
        leaf = name.rsplit(".", 1)[-1]
        if leaf in layers:
            values += cfg.lora.r + (layers[leaf][0] if cfg.lora.dropout > 0 else 0)
    return values


def estimate_run(
    cfg: TrainConfig,
    model_config: dict[str, Any],
    n_train_examples: int,
    mean_tokens: float,
    p99_tokens: int | None = None,
    device: Device = "cpu",
    free_gpu_bytes: int | None = None,
    *,
    n_val_examples: int | None = None,
    flops_per_s: float | None = None,
) -> RunEstimate:
    """Estimate memory, steps, tokens and time of training `cfg` on a dataset.

    Args:
        cfg: the run configuration.
        model_config: the base model's config.json as a dict (see `read_model_config`).
        n_train_examples: training examples (after the split).
        mean_tokens: mean tokens per example (chat template applied).
        p99_tokens: 99th-percentile tokens per example; batches are assumed to be padded
            to it (or to max_seq_len if shorter). Unknown: max_seq_len is assumed.
        device: where the run trains.
        free_gpu_bytes: free memory of the device, to say whether the run fits.
        n_val_examples: validation examples, to add evaluation time.
        flops_per_s: throughput of one device; default `default_flops_per_s(device)`.
    """
    throughput = flops_per_s or default_flops_per_s(device)
    work = _workload(cfg, n_train_examples, mean_tokens, p99_tokens)
    per_epoch, total_steps = optimizer_steps(cfg, max(work.sequences, 1))
    train_tokens = int(work.epoch_tokens * total_steps / per_epoch)
    common: dict[str, Any] = dict(
        method=cfg.method,
        device=device,
        free_gpu_bytes=free_gpu_bytes,
        peak_seq_len=work.peak_len,
        steps_per_epoch=per_epoch,
        total_steps=total_steps,
        train_tokens=train_tokens,
        flops_per_s=throughput,
    )
    try:
        shape = model_shape(model_config)
    except UnknownArchitectureError as exc:
        note = f"{exc.message}: no memory or time estimate ({exc.hint})"
        return RunEstimate(total_params=None, trainable_params=None, memory=None, fits=None,
                           flops=None, seconds=None, notes=(note,), **common)  # fmt: skip
    trainable, unmatched = lora_params(shape, cfg.lora.r, cfg.lora.target_modules)
    memory = estimate_memory(cfg, shape, work.peak_len, device)
    flops = train_tokens * _train_flops_per_token(cfg, shape, trainable, work.context)
    parallel = cfg.num_processes if device == "cuda" else 1  # CPU processes share cores
    evaluations, val_seconds = 0, None
    if n_val_examples:
        evaluations = validation_passes(cfg, total_steps)
        val_tokens = evaluations * n_val_examples * work.tokens_per_example
        val_flops = val_tokens * (2 * shape.matmul_params + _attention_flops(shape, work.context))
        val_seconds = val_flops / (throughput * parallel * VALIDATION_SPEEDUP[device])
    saves = checkpoint_count(cfg, total_steps)
    save_seconds = saves * seconds_per_checkpoint(trainable)
    save_seconds += evaluations * seconds_per_kept_adapter(trainable)  # at most one each
    fits = None if free_gpu_bytes is None else memory.total <= FIT_MARGIN * free_gpu_bytes
    advice = (
        () if fits in (None, True) else _advice(cfg, shape, work.peak_len, device, free_gpu_bytes)
    )
    return RunEstimate(
        total_params=shape.total_params,
        trainable_params=trainable,
        memory=memory,
        fits=fits,
        flops=flops,
        seconds=flops / (throughput * parallel) + (val_seconds or 0.0) + save_seconds,
        validation_seconds=val_seconds,
        checkpoint_seconds=save_seconds,
        evaluations=evaluations,
        checkpoints=saves,
        notes=_notes(cfg, shape, unmatched, device, p99_tokens, work.peak_len),
        advice=advice,
        **common,
    )


VALIDATION_SPEEDUP = {"cpu": 1.2, "cuda": 1.25}
"""How much faster than training a validation pass runs per FLOP (no_grad, no optimizer).
CPU, measured by bench/time_split.py (2-core CPU, default model, quiet): 0.56 s a
validation example against 2.75 s a 2-example training step, 2.4x per example for 2x the
FLOPs. CUDA: a typical training MFU (~40 %) against a forward pass's (~50 %)."""
DISK_BYTES_PER_S = 200e6
"""Assumed write rate of a checkpoint, fsync included (a plain SSD; network disks are slower)."""
SAVE_OVERHEAD_S = 0.3
"""Fixed cost of one save: safetensors headers, the optimizer's state dict, the RNG states."""


def validation_passes(cfg: TrainConfig, total_steps: int) -> int:
    """Validation passes in a run of `total_steps` (see `validation_passes_every`)."""
    return validation_passes_every(cfg.eval_steps, total_steps)


def validation_passes_every(eval_steps: int, total_steps: int) -> int:
    """Validation passes of a run that validates every `eval_steps`: before the first step,
    at each multiple, and at the last step (the Trainer adds it when it is not a multiple)."""
    every = max(eval_steps, 1)
    return 1 + total_steps // every + (1 if total_steps % every else 0)


def checkpoint_count(cfg: TrainConfig, total_steps: int) -> int:
    """Checkpoints of a run of `total_steps`: every save_steps, and at the end (the Trainer
    always saves the last step)."""
    every = max(cfg.save_steps, 1)
    return total_steps // every + (1 if total_steps % every else 0)


def seconds_per_checkpoint(trainable_params: int) -> float:
    """One checkpoint: the adapter and AdamW's two moments in fp32, written and fsynced."""
    return SAVE_OVERHEAD_S + trainable_params * 4 * 3 / DISK_BYTES_PER_S


def seconds_per_kept_adapter(trainable_params: int) -> float:
    """One kept adapter (adapter/, at a better validation loss): the fp32 weights alone."""
    return SAVE_OVERHEAD_S / 3 + trainable_params * 4 / DISK_BYTES_PER_S


@dataclass(frozen=True)
class _Workload:
    """What one epoch feeds the model, in sequences and tokens."""

    tokens_per_example: float  # mean tokens after truncation to max_seq_len
    epoch_tokens: float
    sequences: int  # per epoch: examples, or packed max_seq_len sequences
    peak_len: int  # length of the longest micro-batch assumed for memory
    context: float  # mean sequence length attention works over


def _workload(cfg: TrainConfig, n_examples: int, mean: float, p99: int | None) -> _Workload:
    per_example = min(mean, cfg.max_seq_len)
    epoch_tokens = n_examples * per_example
    if cfg.packing:
        sequences = math.ceil(epoch_tokens / cfg.max_seq_len)
        return _Workload(per_example, epoch_tokens, sequences, cfg.max_seq_len, cfg.max_seq_len)
    peak = cfg.max_seq_len if p99 is None else min(p99, cfg.max_seq_len)
    return _Workload(per_example, epoch_tokens, n_examples, peak, per_example)


def _attention_flops(shape: ModelShape, context: float) -> float:
    """Forward FLOPs per token of causal attention (QK^T and AV over half the context)."""
    return 2 * context * shape.q_dim * shape.num_layers


def _train_flops_per_token(
    cfg: TrainConfig, shape: ModelShape, trainable: int, context: float
) -> float:
    forward_passes = 2 if cfg.gradient_checkpointing else 1  # checkpointing: forward twice
    matmul = (2 * forward_passes + 2) * shape.matmul_params
    attention = (forward_passes + 2) * _attention_flops(shape, context)
    return matmul + attention + 6 * trainable


def _notes(
    cfg: TrainConfig,
    shape: ModelShape,
    unmatched: list[str],
    device: Device,
    p99_tokens: int | None,
    peak_len: int,
) -> tuple[str, ...]:
    notes = []
    if unmatched:
        notes.append(
            f"lora.target_modules {unmatched} match no layer of this {shape.model_type} "
            f"model (its layers: {', '.join(shape.linear_layers())})"
        )
    if p99_tokens is not None and peak_len < cfg.max_seq_len and not cfg.packing:
        notes.append(
            f"memory assumes batches up to the p99 length ({peak_len} tokens); a batch "
            f"holding a longer example needs more (up to max_seq_len = {cfg.max_seq_len})"
        )
    if cfg.method == "qlora" and device == "cpu":
        notes.append("QLoRA on CPU dequantises weights at every matmul: expect it slower")
    return tuple(notes)


def _advice(
    cfg: TrainConfig, shape: ModelShape, seq_len: int, device: Device, free: int | None
) -> tuple[str, ...]:
    """Changes that cut memory, each with the total it would give."""
    options: list[tuple[str, dict[str, Any]]] = []
    if not cfg.gradient_checkpointing:
        options.append(("gradient_checkpointing = true", {"gradient_checkpointing": True}))
    if cfg.method == "lora":
        options.append(("method = qlora", {"method": "qlora"}))
    if cfg.micro_batch_size > 1:
        mb, ga = max(cfg.micro_batch_size // 2, 1), cfg.gradient_accumulation * 2
        changes = {"micro_batch_size": mb, "gradient_accumulation": min(ga, 4096)}
        options.append((f"micro_batch_size = {mb}, gradient_accumulation = {ga}", changes))
    lines, combined = [], {}
    for label, changes in options:
        combined.update(changes)
        total = estimate_memory(with_overrides(cfg, **changes), shape, seq_len, device).total
        lines.append(f"{label}: {_size(total)}")
    if combined:
        total = estimate_memory(with_overrides(cfg, **combined), shape, seq_len, device).total
        verdict = "fits" if free is not None and total <= FIT_MARGIN * free else "still too big"
        lines.append(f"all of these together: {_size(total)} ({verdict})")
    lines.append("a shorter max_seq_len also helps (longer examples get truncated)")
    return tuple(lines)


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def _count(n: float) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f} B"
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.1f} k"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def format_estimate(est: RunEstimate) -> list[str]:
    """The estimate as short lines for a terminal (sizes in MB/GB, time in min/h)."""
    lines = []
    if est.total_params is not None and est.trainable_params is not None:
        share = 100 * est.trainable_params / est.total_params
        lines.append(
            f"Parameters: {_count(est.total_params)} in the base model, "
            f"{_count(est.trainable_params)} trained ({share:.2f}%)"
        )
    if est.memory is not None:
        m = est.memory
        lines.append(f"Weights ({est.method} on {est.device}): {_size(m.weights)}")
        lines.append(f"Adapter + gradients + AdamW: {_size(m.adapter + m.gradients + m.optimizer)}")
        lines.append(
            f"Activations: {_size(m.activations)}, logits: {_size(m.logits)} "
            f"(micro-batch of {est.peak_seq_len}-token sequences)"
        )
        line = f"Peak memory: about {_size(m.total)}"
        if est.free_gpu_bytes is not None:
            verdict = "fits in" if est.fits else "does NOT fit in"
            line += f" - {verdict} {_size(est.free_gpu_bytes)} free"
        lines.append(line)
    lines.append(
        f"Steps: {est.steps_per_epoch} per epoch, {est.total_steps} in total; "
        f"{_count(est.train_tokens)} tokens"
    )
    if est.seconds is not None:
        lines.append(
            f"Time: about {_duration(est.seconds)} (estimate at an assumed "
            f"{est.flops_per_s / 1e9:,.0f} GFLOP/s)"
        )
        lines.append(_overhead_line(est, est.seconds))
    lines += [f"If it does not fit - {a}" for a in est.advice]
    lines += [f"Note: {n}" for n in est.notes]
    return lines


def _overhead_line(est: RunEstimate, total: float) -> str:
    """What validation and checkpoints cost of the run's time."""
    share = 100 / max(total, 1e-9)
    parts = []
    if est.validation_seconds is not None:
        parts.append(f"{est.evaluations} validations ~{_duration(est.validation_seconds)} "
                     f"({share * est.validation_seconds:.0f} %)")  # fmt: skip
    if est.checkpoint_seconds is not None:
        parts.append(f"{est.checkpoints} checkpoints ~{_duration(est.checkpoint_seconds)} "
                     f"({share * est.checkpoint_seconds:.0f} %)")  # fmt: skip
    return "Of which: " + ", ".join(parts)


def _nvidia_smi_first_gpu(field: str) -> str | None:
    """One field of the first GPU as nvidia-smi reports it (no header, no units), or None
    when there is no nvidia-smi or it does not answer."""
    if shutil.which("nvidia-smi") is None:
        return None
    query = ["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if lines else None


@functools.cache
def detect_gpu_name() -> str | None:
    """The first GPU's name from nvidia-smi (asked once per process), else None."""
    return _nvidia_smi_first_gpu("name")


def detect_device() -> tuple[Device, int | None]:
    """("cuda", free bytes of the first GPU) when nvidia-smi answers, else ("cpu", None).

    Asks nvidia-smi rather than torch: importing torch takes seconds, and the wizard and
    the CLI ask before any model is loaded.
    """
    free_mib = _nvidia_smi_first_gpu("memory.free")
    try:
        return ("cuda", int(free_mib) * 2**20) if free_mib is not None else ("cpu", None)
    except ValueError:
        return "cpu", None
