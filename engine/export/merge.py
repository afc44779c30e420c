"""Merging a run's LoRA adapter into its base model, in memory or saved as safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.config.build import TrainConfig


def merged_model(cfg: TrainConfig, adapter: Path) -> Any:
    """The base reloaded unquantised with the adapter merged in (one copy, in memory).

    QLoRA trains against an NF4 base; merging into 4-bit weights would round the update
    away, so the base is reloaded in fp32 (CPU) or bf16 (CUDA) first.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from engine.model.resolve import resolve_model

    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    base = AutoModelForCausalLM.from_pretrained(resolve_model(cfg.model), dtype=dtype)
    return PeftModel.from_pretrained(base, adapter).merge_and_unload()


def merge_adapter(cfg: TrainConfig, adapter: Path, out: Path) -> None:
    """Merge the adapter into the base and save the model and the base's tokenizer."""
    from transformers import AutoTokenizer

    from engine.model.resolve import resolve_model

    merged_model(cfg, adapter).save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(resolve_model(cfg.model)).save_pretrained(out)
