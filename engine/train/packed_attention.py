"""Attention that stays inside each example of a padding-free row, and skips the rest.

A padding-free micro-batch (engine.model.loss.PackedCollator) is one row holding several
examples. transformers' `sdpa` path keeps them apart with a block-diagonal mask over the
whole row: with four examples of ~160 tokens that is a 640 x 640 score matrix per head of
which ~7/8 is masked away, and with a mask PyTorch's CPU kernel cannot skip the blocks, nor
use grouped key/value heads without copying them. Here each example gets its own causal
attention call on its slice of the row (what FlashAttention's "varlen" kernels do on
GPUs): the same result (tests/engine/test_packed_attention.py compares losses and
gradients with the masked path), a fraction of the work.

`use_packed_attention(model)` switches a model that would use `sdpa` to this attention;
anything that is not a plain padding-free row (a padding mask, a KV cache during
generation, batches of several rows) goes to transformers' own `sdpa` code unchanged.
Models whose attention is more than causal (sliding windows, logit soft-capping) keep
`sdpa`.

Where the examples start comes from `seq_bounds` (the collator's cumulative lengths as
plain ints: the Trainer leaves them on the CPU, so no layer waits on the GPU to read
them), else `cu_seq_lens_q` (the same as a tensor, the name transformers uses for
FlashAttention), else the restarting `position_ids`.

On CUDA in bf16/fp16 the whole row goes to one varlen FlashAttention call
(`torch.nn.attention.varlen.varlen_attn`, PyTorch 2.10 and later) with the device copy
of the bounds and the longest example's length from the collator: no per-example loop,
no host sync. Without it (older PyTorch, fp32) the per-example calls use the CPU bounds.
"""

from __future__ import annotations

import logging
from typing import Any

NAME = "tunedeck_packed"
"""The name under which the attention and its mask are registered in transformers."""

_registered = False
_varlen_failed = False  # set once varlen attention turned out unusable in this process

_NOT_PLAIN = ("position_bias", "s_aux", "softcap", "sliding_window")
"""Keyword arguments that make an attention call more than causal: left to `sdpa`."""


def sequence_starts(position_ids: Any) -> list[int]:
    """Cumulative bounds [0, ..., n] of the examples in one row of restarting positions."""
    import torch

    row = position_ids.reshape(-1)
    starts = (torch.diff(row) != 1).nonzero().flatten() + 1
    return [0, *starts.tolist(), row.numel()]


def packed_attention_forward(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers' attention-function signature; (batch, seq, heads, dim) out."""
    import torch
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    length = query.shape[2]
    plain = attention_mask is None and query.shape[0] == 1 and key.shape[2] == length
    plain = plain and not any(kwargs.get(extra) is not None for extra in _NOT_PLAIN)
    if not plain or is_causal is False or not getattr(module, "is_causal", True):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask,
            dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs,
        )  # fmt: skip
    grouped = key.shape[1] != query.shape[1]
    if query.is_cuda and not dropout:
        out = _varlen(query, key, value, kwargs, scaling, grouped)
        if out is not None:
            return out, None
    bounds = row_bounds(kwargs, length)
    dtype = query.dtype
    if query.device.type == "cpu" and dtype in (torch.bfloat16, torch.float16):
        # PyTorch's CPU flash kernel is about twice as fast in fp32 as in bf16 at these
        # sizes (and exact): the upcast of q/k/v costs far less than it saves.
        query, key, value = query.float(), key.float(), value.float()
    outputs = [
        F.scaled_dot_product_attention(
            query[:, :, start:end],
            key[:, :, start:end],
            value[:, :, start:end],
            dropout_p=dropout,
            scale=scaling,
            is_causal=True,
            enable_gqa=grouped,
        )
        for start, end in zip(bounds[:-1], bounds[1:], strict=False)
        if end > start
    ]
    out = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)
    return out.to(dtype).transpose(1, 2).contiguous(), None


def row_bounds(kwargs: dict[str, Any], length: int) -> list[int]:
    """Example bounds [0, ..., length] of the row, read without a GPU sync if possible."""
    if kwargs.get("seq_bounds") is not None:
        return [int(b) for b in kwargs["seq_bounds"]]
    if kwargs.get("cu_seq_lens_q") is not None:
        return [int(b) for b in kwargs["cu_seq_lens_q"].tolist()]  # syncs on a GPU
    if kwargs.get("position_ids") is not None:
        return sequence_starts(kwargs["position_ids"])
    return [0, length]


def _varlen(
    query: Any, key: Any, value: Any, kwargs: dict[str, Any], scaling: Any, grouped: bool
) -> Any:
    """One varlen FlashAttention call over the row (CUDA, half precision), or None."""
    import torch

    bounds, longest = kwargs.get("cu_seq_lens_q"), kwargs.get("max_length_q")
    if bounds is None or longest is None or query.dtype not in (torch.bfloat16, torch.float16):
        return None
    global _varlen_failed
    if _varlen_failed:
        return None
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:  # PyTorch before 2.10
        _varlen_failed = True
        return None
    cu = bounds.to(device=query.device, dtype=torch.int32)
    # (1, heads, tokens, dim) -> (tokens, heads, dim); back as (1, tokens, heads, dim).
    q, k, v = (t[0].transpose(0, 1).contiguous() for t in (query, key, value))
    try:
        out: Any = varlen_attn(
            q, k, v, cu, cu, int(longest), int(longest),
            scale=scaling, window_size=(-1, 0), enable_gqa=grouped,
        )  # fmt: skip
    except (RuntimeError, NotImplementedError, TypeError) as exc:  # GPU or head size unsupported
        if type(exc).__name__ == "OutOfMemoryError":
            raise  # the trainer's OOM handling decides, not a silent fallback
        _varlen_failed = True
        logging.getLogger(__name__).warning("varlen attention unavailable (%s): per-example "
                                            "attention instead", exc)  # fmt: skip
        return None
    return out.unsqueeze(0)


def packed_attention_mask(
    *,
    attention_mask: Any = None,
    q_length: int,
    kv_length: int,
    q_offset: int = 0,
    kv_offset: int = 0,
    **kwargs: Any,
) -> Any:
    """No mask for a row without padding or cache (the attention bounds each example);
    otherwise the mask `sdpa` would get."""
    from transformers.masking_utils import sdpa_mask

    if attention_mask is None and q_length == kv_length and q_offset == 0 and kv_offset == 0:
        return None
    return sdpa_mask(
        attention_mask=attention_mask, q_length=q_length, kv_length=kv_length,
        q_offset=q_offset, kv_offset=kv_offset, **kwargs,
    )  # fmt: skip


def register() -> None:
    """Make NAME known to transformers (once per process)."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, packed_attention_forward)
    AttentionMaskInterface.register(NAME, packed_attention_mask)
    _registered = True


def supports_packed_attention(config: Any) -> bool:
    """Plain causal self-attention through `sdpa`: no sliding window, no soft-capping."""
    if getattr(config, "_attn_implementation", None) not in ("sdpa", NAME):
        return False
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return False
    if getattr(config, "layer_types", None) and set(config.layer_types) != {"full_attention"}:
        return False
    return not getattr(config, "attn_logit_softcapping", None)


def use_packed_attention(model: Any) -> bool:
    """Switch `model` (a transformers model, or a peft model around one) to NAME where
    its attention allows; returns whether it did."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not supports_packed_attention(base.config):
        return False
    register()
    base.set_attn_implementation(NAME)
    return True
