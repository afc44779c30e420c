"""The model being trained: the base (NF4 for QLoRA) with LoRA on top, placed on the
devices of this process (one GPU, DDP copies or FSDP shards, or the CPU)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.config.build import TrainConfig
from engine.core.errors import TunedeckError
from engine.model.load import nf4_config
from engine.train.packed_attention import use_packed_attention

FSDP_CONFIG: dict[str, Any] = {
    "version": 2,
    "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
    "cpu_ram_efficient_loading": True,
    "state_dict_type": "FULL_STATE_DICT",
}
"""FSDP settings after peft's FSDP guide (FSDP2, one unit per decoder layer, rank 0 loads
the weights). Checkpoints gather the full state so adapters stay plain PEFT files."""


def parallel_mode(cfg: TrainConfig, device: str) -> str:
    """How the processes share the work: "single", "ddp" (a copy per GPU) or "fsdp"."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return "single"
    wants_fsdp = cfg.wants_fsdp(device)
    if wants_fsdp and device != "cuda":
        raise TunedeckError(
            "FSDP shards the model across GPUs and needs CUDA; this machine has none",
            hint='set distributed = "ddp" (or "auto") to train with several CPU processes',
        )
    return "fsdp" if wants_fsdp else "ddp"


def load_model(
    cfg: TrainConfig, model_path: Path, device: str, dtype: Any, mode: str = "single"
) -> Any:
    """The base model (NF4 for QLoRA) with LoRA adapters on the configured modules.

    Under FSDP (mode "fsdp") QLoRA follows peft's recipe: the 4-bit weights are stored
    in the compute dtype so FSDP can shard them, no device map (FSDP places the shards),
    and every parameter, adapters included, keeps that one dtype.
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    sharded = mode == "fsdp"
    kwargs: dict[str, Any] = {"dtype": dtype}
    if cfg.method == "qlora":
        kwargs["quantization_config"] = nf4_config(dtype, sharded=sharded)
    placement = model_device_map(cfg, device, mode)
    if placement is not None:
        kwargs["device_map"] = placement
    model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    if cfg.method == "qlora" and not sharded:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs=CHECKPOINTING_KWARGS,
        )
    elif cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=CHECKPOINTING_KWARGS)
        model.enable_input_require_grads()
    targets = list(cfg.lora.target_modules)
    lora = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules="all-linear" if targets == ["all-linear"] else targets,
        task_type="CAUSAL_LM",
    )
    adapted = get_peft_model(model, lora, autocast_adapter_dtype=not sharded)
    use_packed_attention(adapted)  # the training rows are padding-free (PackedCollator)
    return adapted


CHECKPOINTING_KWARGS = {"use_reentrant": False}
"""Non-reentrant checkpointing: works with frozen inputs and FSDP, and is what PyTorch
recommends (the reentrant default of peft's kbit preparation warns and recomputes more)."""


def model_device_map(cfg: TrainConfig, device: str, mode: str) -> dict[str, Any] | None:
    """Where from_pretrained puts the weights: straight onto this rank's GPU.

    Under FSDP none (FSDP places the shards; with cpu_ram_efficient_loading only rank 0
    reads the weights, the others start empty). On CUDA otherwise the local rank's GPU,
    so no process first holds a full copy in host RAM. On CPU a 4-bit model needs the
    explicit "cpu" map (bitsandbytes would pick a GPU), a plain one loads there anyway.
    """
    if mode == "fsdp":
        return None
    if device == "cuda":
        return {"": _local_cuda_device()}
    return {"": "cpu"} if cfg.method == "qlora" else None


def _local_cuda_device() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def prepare_distributed(mode: str) -> None:
    """Environment that must exist before the model loads (FSDP).

    peft's FSDP-QLoRA recipe starts through `accelerate launch`, whose config sets
    ACCELERATE_USE_FSDP and FSDP_CPU_RAM_EFFICIENT_LOADING; under torchrun tunedeck sets
    them itself. transformers reads them while loading: ranks other than 0 then skip
    reading the weights (rank 0's are broadcast when FSDP wraps the model).
    """
    if mode == "fsdp":
        os.environ["ACCELERATE_USE_FSDP"] = "true"
        os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] = str(
            FSDP_CONFIG["cpu_ram_efficient_loading"]
        ).lower()
