"""What a GGUF of a supported architecture holds: names, layouts, types and hyper-parameters.

llama.cpp reads a model by GGUF tensor names (`blk.0.attn_q.weight`) and metadata keys
(`llama.block_count`); the `gguf` package carries both (its tensor name map and writer).
This module decides, for each Hugging Face tensor, the GGUF name, the row order and the
storage type, following llama.cpp's own converter (convert_hf_to_gguf.py):

- the llama family (SmolLM2, Llama-3.x, Mistral) stores Q and K with the rows of each head
  interleaved for its rotary embedding (`LlamaModel.permute`); Qwen2 stores them as is;
- 1-D tensors, norms and biases stay F32; matrices take the chosen type, falling back to
  F16 where a row does not split into the type's 32-value blocks;
- q4_0 keeps the token embedding / output matrix at Q8_0, as llama-quantize keeps that one
  matrix at higher precision (Q6_K there, which gguf's numpy quantisers cannot write).

numpy and gguf only; the callers hand in arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from gguf import (
    GGML_QUANT_SIZES,
    MODEL_ARCH,
    GGMLQuantizationType,
    GGUFWriter,
    LlamaFileType,
    RopeScalingType,
    get_tensor_name_map,
)
from gguf.quants import quant_shape_to_byte_shape, quantize

from engine.core.errors import TunedeckError
from engine.export.gguf.options import WrittenQuant

GGUF_ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2"}
"""Hugging Face model_type -> GGUF architecture (llama.cpp converts Mistral as llama)."""
SUPPORTED_TEXT = "llama (SmolLM2, Llama-3.x), mistral, qwen2 (Qwen2, Qwen2.5)"
_ARCH_ENUM = {"llama": MODEL_ARCH.LLAMA, "qwen2": MODEL_ARCH.QWEN2}
_ROPE_TYPES = ("default", "llama3", "linear")

_FILE_TYPE = {"f16": LlamaFileType.MOSTLY_F16, "q8_0": LlamaFileType.MOSTLY_Q8_0,
              "q4_0": LlamaFileType.MOSTLY_Q4_0}  # fmt: skip
_MATRIX_TYPE = {"f16": GGMLQuantizationType.F16, "q8_0": GGMLQuantizationType.Q8_0,
                "q4_0": GGMLQuantizationType.Q4_0}  # fmt: skip
_OUTPUT_MATRICES = ("token_embd.weight", "output.weight")


class UnsupportedModelError(TunedeckError):
    """A model GGUF export cannot write faithfully (architecture, rope scaling, tensor)."""


@dataclass(frozen=True)
class TensorPlan:
    """One tensor of the GGUF: where it comes from, its name, shape and storage type."""

    source: str
    """The Hugging Face name (`model.layers.0.self_attn.q_proj.weight`), or `rope_freqs`."""
    name: str
    """The GGUF name (`blk.0.attn_q.weight`)."""
    shape: tuple[int, ...]
    """numpy / torch order (rows first); GGUF stores the dimensions reversed."""
    qtype: GGMLQuantizationType
    heads: int | None = None
    """Permute the rows for llama.cpp's rotary layout in groups of this many heads."""

    @property
    def nbytes(self) -> int:
        """Bytes of the stored data."""
        if self.qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            return math.prod(self.shape) * (4 if self.qtype == GGMLQuantizationType.F32 else 2)
        return math.prod(quant_shape_to_byte_shape(self.shape, self.qtype))


# ---------------------------------------------------------------------------
# Architecture
# ---------------------------------------------------------------------------


def gguf_architecture(config: dict[str, Any]) -> str:
    """The GGUF architecture for a model config.json, or a refusal naming what is supported.

    Raises:
        UnsupportedModelError: another architecture, or a rope scaling llama.cpp reads
            differently.
    """
    model_type = str(config.get("model_type", "unknown"))
    if model_type not in GGUF_ARCH:
        raise UnsupportedModelError(
            f"GGUF export does not support the {model_type!r} architecture",
            hint=f"supported: {SUPPORTED_TEXT}; export the adapter, or a merged model "
            "(--merged), and convert it with llama.cpp's own tools",
        )
    rope_type = str(_rope(config).get("rope_type") or "default")
    if rope_type not in _ROPE_TYPES:
        raise UnsupportedModelError(
            f"GGUF export does not support {model_type} with {rope_type!r} rope scaling",
            hint=f"supported rope scaling: {', '.join(_ROPE_TYPES)}",
        )
    return GGUF_ARCH[model_type]


def _rope(config: dict[str, Any]) -> dict[str, Any]:
    """Rope settings: transformers 5 `rope_parameters`, or the older `rope_scaling` + theta."""
    params = config.get("rope_parameters") or config.get("rope_scaling") or {}
    params = dict(params)
    params.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    params.setdefault("rope_type", params.get("type", "default"))
    return params


def head_dim(config: dict[str, Any]) -> int:
    """Width of one attention head."""
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


# ---------------------------------------------------------------------------
# Tensors
# ---------------------------------------------------------------------------


def plan_tensors(
    shapes: dict[str, tuple[int, ...]], config: dict[str, Any], arch: str, quant: WrittenQuant
) -> list[TensorPlan]:
    """The GGUF tensors for a merged model's state dict (name -> shape), in its order.

    Raises:
        UnsupportedModelError: a tensor the GGUF name map does not know.
    """
    names = get_tensor_name_map(_ARCH_ENUM[arch], int(config["num_hidden_layers"]))
    tied = bool(config.get("tie_word_embeddings", False))
    plans = []
    for source, shape in shapes.items():
        if source == "lm_head.weight" and tied:
            continue  # llama.cpp reuses token_embd when output.weight is absent
        name = names.get_name(source, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UnsupportedModelError(
                f"the model has a tensor GGUF export does not know: {source}",
                hint=f"GGUF export writes plain {SUPPORTED_TEXT} models",
            )
        plans.append(TensorPlan(source, name, shape, tensor_type(name, shape, quant),
                                rotary_heads(source, config, arch)))  # fmt: skip
    if str(_rope(config).get("rope_type")) == "llama3":
        plans.insert(0, TensorPlan("rope_freqs", "rope_freqs.weight",
                                   (head_dim(config) // 2,), GGMLQuantizationType.F32))  # fmt: skip
    return plans


def tensor_type(name: str, shape: tuple[int, ...], quant: WrittenQuant) -> GGMLQuantizationType:
    """Storage type of one tensor, as llama.cpp's converter and quantiser choose it."""
    if len(shape) <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight"):
        return GGMLQuantizationType.F32
    wanted = _MATRIX_TYPE[quant]
    if quant == "q4_0" and name in _OUTPUT_MATRICES:
        wanted = GGMLQuantizationType.Q8_0
    block = GGML_QUANT_SIZES[wanted][0]
    return wanted if shape[-1] % block == 0 else GGMLQuantizationType.F16


def rotary_heads(source: str, config: dict[str, Any], arch: str) -> int | None:
    """Heads to permute Q/K rows by (llama family only), else None."""
    if arch != "llama":
        return None
    if ".q_proj." in source:
        return int(config["num_attention_heads"])
    if ".k_proj." in source:
        return int(config.get("num_key_value_heads") or config["num_attention_heads"])
    return None


def permute_rotary(rows: np.ndarray, heads: int) -> np.ndarray:
    """Interleave each head's two rotary halves, as llama.cpp's LlamaModel.permute does."""
    half = rows.shape[0] // heads // 2
    grouped = rows.reshape(heads, 2, half, *rows.shape[1:])
    return grouped.swapaxes(1, 2).reshape(rows.shape)


def encode_tensor(plan: TensorPlan, data: np.ndarray) -> np.ndarray:
    """A float32 array in Hugging Face layout -> the bytes / floats the GGUF stores."""
    if plan.heads is not None:
        data = permute_rotary(data, plan.heads)
    return quantize(np.ascontiguousarray(data, dtype=np.float32), plan.qtype)


def llama3_rope_factors(config: dict[str, Any]) -> np.ndarray:
    """Per-frequency rope factors of Llama-3.1+ scaling (llama.cpp's `rope_freqs` tensor)."""
    rope, dim = _rope(config), head_dim(config)
    freqs = 1.0 / (float(rope["rope_theta"]) ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor = float(rope.get("factor", 8.0))
    low, high = float(rope.get("low_freq_factor", 1.0)), float(rope.get("high_freq_factor", 4.0))
    old_context = float(rope.get("original_max_position_embeddings", 8192))
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old_context / high:
            factors.append(1.0)
        elif wavelen > old_context / low:
            factors.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


# ---------------------------------------------------------------------------
# Hyper-parameters
# ---------------------------------------------------------------------------


def add_hyperparameters(
    writer: GGUFWriter, config: dict[str, Any], arch: str, quant: WrittenQuant
) -> None:
    """The `<arch>.*` keys llama.cpp reads to build the model, and the file type."""
    heads = int(config["num_attention_heads"])
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_vocab_size(int(config["vocab_size"]))
    rope = _rope(config)
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    dim = head_dim(config)
    if dim != int(config["hidden_size"]) // heads:
        writer.add_key_length(dim)
        writer.add_value_length(dim)
    if arch == "llama":
        writer.add_rope_dimension_count(dim)
    if rope.get("rope_type") == "linear":
        writer.add_rope_scaling_type(RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    writer.add_file_type(_FILE_TYPE[quant])
    writer.add_quantization_version(2)
