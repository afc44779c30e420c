"""Merging a run's LoRA adapter into its base model, in memory or saved as safetensors.

The merged model is stored in 16 bits, as merged models are shipped (LLaMA-Factory, Axolotl and
Unsloth's "merged_16bit" do the same): at the base checkpoint's own 16-bit type when it has
one (bf16 for most hub models: the same size on disk as the base), else float16 (the
embedded default model, dequantised to fp32 from its 4-bit GGUF, and any fp32 checkpoint:
half the size of an fp32 file, and float16 keeps 3 more mantissa bits than bf16). The GGUF
export starts from these same weights, so its f16 file holds the merged model exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.config.build import TrainConfig

SIXTEEN_BIT = ("bfloat16", "float16")
FALLBACK_DTYPE = "float16"
"""The merge's type for a base stored in fp32 (or with no type in its config.json)."""
MERGED_BYTES_PER_PARAM = 2


def stored_dtype(model_config: dict[str, Any]) -> str:
    """The 16-bit type the merged model is stored in: the base's own, else float16.

    transformers 5 writes `dtype` into config.json; older checkpoints `torch_dtype`.
    """
    name = model_config.get("dtype") or model_config.get("torch_dtype")
    return name if name in SIXTEEN_BIT else FALLBACK_DTYPE


def merged_model(cfg: TrainConfig, adapter: Path) -> Any:
    """The base reloaded unquantised with the adapter merged in (one copy, in memory).

    QLoRA trains against an NF4 base; merging into 4-bit weights would round the update
    away, so the base is reloaded in fp32 (CPU) or bf16 (CUDA) first. The update is added at
    that precision, then the result is cast to `stored_dtype` (16 bits).
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
    stored = getattr(torch, stored_dtype(read_model_config(path)))
    return merged if stored == dtype else merged.to(stored)


def merge_adapter(cfg: TrainConfig, adapter: Path, out: Path) -> None:
    """Merge the adapter into the base and save the model and the base's tokenizer."""
    from transformers import AutoTokenizer

    from engine.model.resolve import resolve_model

    merged_model(cfg, adapter).save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(resolve_model(cfg.model)).save_pretrained(out)
