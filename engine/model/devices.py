"""Which GPUs a run's worker sees, decided before it starts.

With `num_processes = 1` (the default) on a machine with several GPUs, a worker that sees
every GPU trains badly: transformers' Trainer wraps a LoRA model in `nn.DataParallel`
(which splits a padding-free row's `cu_seq_lens` across replicas), and with QLoRA it
skips the wrap but still multiplies its batch arithmetic by the GPU count. tunedeck
therefore pins such a worker to the first visible GPU through `CUDA_VISIBLE_DEVICES`
and says so (the runtime event's `gpus` text, shown on the Train screen); training on
all of them is `num_processes = N` (torchrun, one process per GPU).

Counting GPUs must not import torch (the TUI starts the worker and stays light): the
NVIDIA driver lists one directory per GPU under /proc/driver/nvidia/gpus.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NVIDIA_GPUS_DIR = Path("/proc/driver/nvidia/gpus")
"""One entry per GPU the NVIDIA driver knows (absent without the driver)."""

GPU_NOTE_ENV = "TUNEDECK_GPUS"
"""Carries the placement text from the starting process to the worker's runtime event."""


@dataclass(frozen=True)
class GpuPlacement:
    """The GPUs one worker launch uses, and the words that say so."""

    env: dict[str, str]
    """Variables to add to the worker's environment (empty: leave it as it is)."""
    note: str
    """What the run uses, for the runtime event and the Train screen ("" without GPUs)."""


def count_nvidia_gpus(gpus_dir: Path = NVIDIA_GPUS_DIR) -> int:
    """GPUs the NVIDIA driver lists; 0 where there is no driver."""
    try:
        return sum(1 for _ in gpus_dir.iterdir())
    except OSError:
        return 0


def visible_gpu_ids(env: Mapping[str, str], gpu_count: int) -> list[str]:
    """The GPU ids a process started with `env` may use (CUDA_VISIBLE_DEVICES, else all)."""
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(index) for index in range(gpu_count)]
    return [part.strip() for part in listed.split(",") if part.strip()]


def place_worker(
    num_processes: int, env: Mapping[str, str] | None = None, gpu_count: int | None = None
) -> GpuPlacement:
    """Pin a single-process worker to one GPU; let torchrun spread several processes.

    Args:
        num_processes: the run's `num_processes`.
        env: the environment the worker inherits (default: this process's).
        gpu_count: GPUs on the machine (default: counted from the NVIDIA driver).
    """
    env = os.environ if env is None else env
    count = count_nvidia_gpus() if gpu_count is None else gpu_count
    visible = visible_gpu_ids(env, count)
    if not visible or count == 0:
        return GpuPlacement({}, "")
    if num_processes <= 1:
        if len(visible) == 1:
            return GpuPlacement({GPU_NOTE_ENV: f"GPU {visible[0]}"}, f"GPU {visible[0]}")
        note = (
            f"GPU {visible[0]} only (pinned: {len(visible)} GPUs visible; set "
            f"num_processes = {len(visible)} to train on all of them)"
        )
        return GpuPlacement({"CUDA_VISIBLE_DEVICES": visible[0], GPU_NOTE_ENV: note}, note)
    used = visible[:num_processes]
    note = f"GPUs {','.join(used)}, one process each"
    if num_processes > len(visible):
        note = f"{num_processes} processes on {len(visible)} visible GPUs (more than one a GPU)"
    return GpuPlacement({GPU_NOTE_ENV: note}, note)


def gpus_overlap(first: str | None, second: str | None) -> bool:
    """Whether two CUDA_VISIBLE_DEVICES values can name the same GPU (None or "": all)."""
    if not first or not second:
        return True
    return bool({g.strip() for g in first.split(",")} & {g.strip() for g in second.split(",")})


def training_on_same_gpu(visible: str | None = None) -> str | None:
    """The id of a live training run whose GPUs this process would share, else None.

    Evaluation loads a second copy of the model; beside a training worker on the same GPU
    both run out of memory. The worker's GPUs come from its runtime event.
    """
    from engine.core.control import worker_alive
    from engine.core.events import iter_all_events
    from engine.core.paths import runs_dir

    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    root = runs_dir()
    if not root.is_dir():
        return None
    for run_dir in sorted(root.iterdir()):
        if not run_dir.is_dir() or not worker_alive(run_dir):
            continue
        runtime = [e for e in iter_all_events(run_dir) if e.get("type") == "runtime"]
        if runtime and runtime[-1].get("device") != "cuda":
            continue  # a CPU run: it shares cores, not GPU memory
        worker = runtime[-1].get("cuda_visible_devices") if runtime else None
        if gpus_overlap(worker, visible):
            return run_dir.name
    return None


BNB_CPU_LOGGER = "bitsandbytes.backends.cpu.ops"
BNB_KERNEL_NOTE = (
    "bitsandbytes: its optional CPU 4-bit kernel from the hub (kernels-community) was not "
    "loaded, because tunedeck never runs remote code; the built-in kernel is used instead "
    "(only CPU QLoRA is affected, and only in speed)"
)


class _HubKernelNote:
    """Replaces bitsandbytes' "kernels-community ... trust_remote_code" warning (which
    reads like a security problem) with what it means; other records pass unchanged."""

    def filter(self, record: Any) -> bool:
        if "kernels-community" in str(record.msg):
            record.msg, record.args, record.levelname = BNB_KERNEL_NOTE, (), "INFO"
            record.levelno = 20
        return True


def explain_bitsandbytes_hub_kernel() -> None:
    """Install the note on bitsandbytes' CPU logger (once; call before it is imported)."""
    import logging

    target = logging.getLogger(BNB_CPU_LOGGER)
    if not any(isinstance(f, _HubKernelNote) for f in target.filters):
        target.addFilter(_HubKernelNote())
