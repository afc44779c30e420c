"""Merging a run's LoRA adapter into its base model, in memory or saved as safetensors.

The merged model is stored at the base checkpoint's own precision: a bf16 hub model gives a
bf16 merge (as on a GPU box, and the same size on disk as the base), the embedded default
model (fp32, dequantised from its GGUF) an fp32 one. The GGUF export starts from these same
weights, so its f16 file holds a bf16 merge exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.config.build import TrainConfig

SIXTEEN_BIT = ("bfloat16", "float16")


def stored_dtype(model_config: dict[str, Any]) -> str | None:
    """The 16-bit type a checkpoint's config.json says its weights are stored in, if any.

    transformers 5 writes `dtype`; older checkpoints `torch_dtype`.
    """
    name = model_config.get("dtype") or model_config.get("torch_dtype")
    return name if name in SIXTEEN_BIT else None


def merged_model(cfg: TrainConfig, adapter: Path) -> Any:
    """The base reloaded unquantised with the adapter merged in (one copy, in memory).

    QLoRA trains against an NF4 base; merging into 4-bit weights would round the update
    away, so the base is reloaded in fp32 (CPU) or bf16 (CUDA) first. The update is added at
    that precision, then the result is cast to the base's stored 16-bit type, if it has one.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from engine.model.resolve import resolve_model
    from engine.model.shapes import read_model_config

    path = resolve_model(cfg.model)
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    base = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    stored = stored_dtype(read_model_config(path))
    if stored is not None and getattr(torch, stored) != dtype:
        merged = merged.to(getattr(torch, stored))
    return merged


def merge_adapter(cfg: TrainConfig, adapter: Path, out: Path) -> None:
    """Merge the adapter into the base and save the model and the base's tokenizer."""
    from transformers import AutoTokenizer

    from engine.model.resolve import resolve_model

    merged_model(cfg, adapter).save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(resolve_model(cfg.model)).save_pretrained(out)
