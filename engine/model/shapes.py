"""The dimensions of a decoder-only model, read from its Hugging Face config.json.

Parameter counts come from arithmetic on the config, not from loading weights, so the
wizard can show them instantly (no torch import). Only architectures whose layer layout is
known are counted — Llama-style decoders with q/k/v/o and gate/up/down projections —
and anything else raises `UnknownArchitectureError` rather than returning a wrong guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.errors import ModelLoadError, TunedeckError

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""What peft's "all-linear" targets in these architectures (every projection, not lm_head)."""


class UnknownArchitectureError(TunedeckError):
    """A model config whose layer layout tunedeck does not know how to count."""


@dataclass(frozen=True)
class _Family:
    """How one model_type departs from the plain Llama layout."""

    qkv_bias: bool | None = None  # None: read `attention_bias` (q, k, v and o)
    mlp_bias_key: bool = False  # honours `mlp_bias`
    qk_norm: bool = False  # RMSNorm over head_dim on q and k
    norms_per_layer: int = 2
    head_dim: int | None = None  # the config class's default when config.json omits it
    tie_default: bool = False


FAMILIES: dict[str, _Family] = {
    "llama": _Family(mlp_bias_key=True),
    "granite": _Family(mlp_bias_key=True),
    "smollm3": _Family(mlp_bias_key=True, tie_default=True),
    "mistral": _Family(),
    "qwen2": _Family(qkv_bias=True),
    "qwen3": _Family(qk_norm=True, head_dim=128),
    "gemma": _Family(head_dim=256, tie_default=True),
    "gemma2": _Family(head_dim=256, tie_default=True, norms_per_layer=4),
    "gemma3_text": _Family(head_dim=256, tie_default=True, norms_per_layer=4, qk_norm=True),
}


@dataclass(frozen=True)
class ModelShape:
    """The sizes that decide parameter count, memory and compute of a decoder model."""

    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    tie_word_embeddings: bool
    qkv_bias: bool
    o_bias: bool
    mlp_bias: bool
    qk_norm: bool
    norms_per_layer: int
    max_position_embeddings: int | None

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    def linear_layers(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each projection in one decoder layer."""
        h, i, q, kv = self.hidden_size, self.intermediate_size, self.q_dim, self.kv_dim
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    @property
    def linear_params(self) -> int:
        """Weights of all projections in all layers: what QLoRA stores in 4 bits."""
        return self.num_layers * sum(i * o for i, o in self.linear_layers().values())

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def matmul_params(self) -> int:
        """Weights used in a matrix multiply per token: projections and the output head."""
        return self.linear_params + self.embedding_params

    @property
    def total_params(self) -> int:
        """All parameters, counted as `sum(p.numel() for p in model.parameters())` does."""
        h, i = self.hidden_size, self.intermediate_size
        per_layer = self.norms_per_layer * h
        per_layer += (self.q_dim + 2 * self.kv_dim) if self.qkv_bias else 0
        per_layer += h if self.o_bias else 0
        per_layer += (2 * i + h) if self.mlp_bias else 0
        per_layer += 2 * self.head_dim if self.qk_norm else 0
        head = 0 if self.tie_word_embeddings else self.embedding_params
        return self.embedding_params + self.linear_params + self.num_layers * per_layer + h + head


def model_shape(config: dict[str, Any]) -> ModelShape:
    """Read a `ModelShape` from an HF config dict (nested `text_config` included).

    Raises:
        UnknownArchitectureError: a model_type whose layout is not in FAMILIES, or a config
            missing one of the sizes.
    """
    if "text_config" in config and "hidden_size" not in config:
        config = config["text_config"]
    model_type = str(config.get("model_type", "?"))
    family = FAMILIES.get(model_type)
    if family is None:
        raise UnknownArchitectureError(
            f"unknown architecture {model_type!r}: cannot count its parameters",
            hint="known: " + ", ".join(FAMILIES),
        )
    try:
        hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        shape = dict(
            vocab_size=int(config["vocab_size"]),
            intermediate_size=int(config["intermediate_size"]),
            num_layers=int(config["num_hidden_layers"]),
            num_kv_heads=int(config.get("num_key_value_heads") or heads),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UnknownArchitectureError(
            f"the {model_type} config lacks a usable {exc} entry: cannot count parameters"
        ) from None
    attention_bias = bool(config.get("attention_bias", False))
    return ModelShape(
        model_type=model_type,
        hidden_size=hidden,
        num_heads=heads,
        head_dim=int(config.get("head_dim") or family.head_dim or hidden // heads),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", family.tie_default)),
        qkv_bias=attention_bias if family.qkv_bias is None else family.qkv_bias,
        o_bias=attention_bias if family.qkv_bias is None else False,
        mlp_bias=family.mlp_bias_key and bool(config.get("mlp_bias", False)),
        qk_norm=family.qk_norm,
        norms_per_layer=family.norms_per_layer,
        max_position_embeddings=config.get("max_position_embeddings"),
        **shape,
    )


def lora_params(
    shape: ModelShape, r: int, target_modules: tuple[str, ...]
) -> tuple[int, list[str]]:
    """Trainable parameters of a LoRA adapter: r x (in + out) per targeted projection.

    Names match the way peft matches them (the last part of a dotted module path).

    Returns:
        The count, and the target names that match no layer of this model.
    """
    layers = shape.linear_layers()
    names = ALL_LINEAR if target_modules == ("all-linear",) else target_modules
    total, unmatched = 0, []
    for name in names:
        leaf = name.rsplit(".", 1)[-1]
        if leaf in layers:
            fan_in, fan_out = layers[leaf]
            total += shape.num_layers * r * (fan_in + fan_out)
        elif leaf == "lm_head":
            total += r * (shape.hidden_size + shape.vocab_size)
        else:
            unmatched.append(name)
    return total, unmatched


def read_model_config(path_or_dir: str | Path) -> dict[str, Any]:
    """The parsed config.json of a model directory (or the file itself); no torch needed.

    Raises:
        ModelLoadError: no config.json there, or not a JSON object.
    """
    path = Path(path_or_dir).expanduser()
    if path.is_dir():
        path = path / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(
            f"no model config at {path}", hint="a model directory needs its config.json"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read the model config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} is not a JSON object")
    return data
