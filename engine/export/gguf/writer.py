"""Write a merged model, or a LoRA adapter alone, as one GGUF file; then read it back.

Streaming: the tensor table (names, shapes, types, sizes) is known before any data is
converted, so the header, metadata and table are written first and each tensor is then
converted (Q/K permuted, quantised) and appended on its own. Peak memory is the model
being exported plus one tensor's conversion, never a second copy of the model. The
tokenizer metadata is gathered before the model is asked for (loading a tokenizer and
parsing tokenizer.json costs ~140 MB for a moment on a 49k vocabulary), and the model is
let go before the file is read back.

After writing, `verify_gguf` reads the file's header back (engine.export.gguf.header, the
layout llama.cpp reads) and checks the tensor count, every name, shape and type, and the
vocabulary size.

The adapter file is llama.cpp's LoRA format (`llama-cli --lora`, Ollama `ADAPTER`):
`general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha`, and for each
adapted matrix a pair `<gguf name>.lora_a` (r x in) / `<gguf name>.lora_b` (out x r),
lora_b of Q and K permuted like the base rows (llama family), since the permutation acts
on output rows: P(W + s B A) = PW + s (PB) A.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFType, GGUFWriter, Keys

from engine.core.errors import TunedeckError
from engine.export.gguf.header import GgufHeader, read_header
from engine.export.gguf.tensors import (
    TensorPlan,
    UnsupportedModelError,
    WrittenQuant,
    add_hyperparameters,
    encode_tensor,
    gguf_architecture,
    llama3_rope_factors,
    plan_tensors,
    rotary_heads,
)
from engine.export.gguf.vocab import add_vocabulary

ProgressFn = Callable[[str, float], None]
ADAPTER_TYPE = GGMLQuantizationType.F16
"""LoRA pairs are small; F16 is what llama.cpp's convert_lora_to_gguf writes by default."""


class GgufCheckError(TunedeckError):
    """The written GGUF does not read back as planned."""


@dataclass(frozen=True)
class GgufSummary:
    """What a GGUF file holds, as read back from it."""

    path: Path
    architecture: str
    tensors: int
    vocab_size: int | None
    types: dict[str, int]
    """Storage type name -> number of tensors of that type."""
    alpha: float | None = None
    """adapter.lora.alpha, for an adapter file."""


def no_progress(stage: str, fraction: float) -> None:
    return None


# ---------------------------------------------------------------------------
# Merged model
# ---------------------------------------------------------------------------


def write_model_gguf(
    load_state: Callable[[], Mapping[str, Any]],
    config: dict[str, Any],
    tokenizer_dir: Path,
    path: Path,
    quant: WrittenQuant,
    name: str,
    progress: ProgressFn | None = None,
) -> GgufSummary:
    """Write a model as one GGUF of the given type.

    Args:
        load_state: returns the model's state dict (torch tensors); called once the
            metadata is ready, and dropped before the file is read back, so that
            nothing else keeps the model alive.

    Raises:
        UnsupportedModelError: an architecture or tensor GGUF export does not support.
        GgufCheckError: the file does not read back as written.
    """
    say = progress or no_progress
    arch = gguf_architecture(config)
    writer = GGUFWriter(path, arch)
    try:
        writer.add_type(GGUFType.MODEL)
        writer.add_name(name)
        add_hyperparameters(writer, config, arch, quant)
        vocab = add_vocabulary(writer, tokenizer_dir, int(config["vocab_size"]))
        plans = _write_state(writer, load_state(), config, arch, quant, say)
    finally:
        writer.close()
    return verify_gguf(path, plans, vocab.size)


def _write_state(
    writer: GGUFWriter, state: Mapping[str, Any], config: dict[str, Any], arch: str,
    quant: WrittenQuant, say: ProgressFn,
) -> list[TensorPlan]:  # fmt: skip
    shapes = {key: tuple(int(d) for d in tensor.shape) for key, tensor in state.items()}
    plans = plan_tensors(shapes, config, arch, quant)
    _write_tensors(writer, plans, lambda plan: _model_tensor(plan, state, config), say)
    return plans


def _model_tensor(plan: TensorPlan, state: Mapping[str, Any], config: dict[str, Any]) -> Any:
    """The tensor as the model holds it (16-bit for a merge): `_encode` converts it."""
    if plan.source == "rope_freqs":
        return llama3_rope_factors(config)
    return state[plan.source].detach()


CHUNK_ELEMENTS = 1 << 24
"""Elements converted to float32 at a time (64 MB), so that a 16-bit merge is never copied
whole at 32 bits: the embedding of a 135M model alone would be 113 MB more."""


def _encode(plan: TensorPlan, data: Any) -> np.ndarray:
    """`encode_tensor`, a block of rows at a time for a large matrix. GGUF's block types
    (q8_0, q4_0) quantise along each row, so blocks of rows give the same bytes; Q and K
    are permuted across a head's rows, so they are converted whole."""
    if isinstance(data, np.ndarray):
        return encode_tensor(plan, data)
    rows = max(1, CHUNK_ELEMENTS // max(1, math.prod(data.shape[1:])))
    if plan.heads is not None or data.dim() < 2 or data.shape[0] <= rows:
        return encode_tensor(plan, _float32(data))
    return np.concatenate(
        [encode_tensor(plan, _float32(data[i : i + rows])) for i in range(0, len(data), rows)]
    )


def _float32(tensor: Any) -> np.ndarray:
    return tensor.float().cpu().numpy()


def _write_tensors(
    writer: GGUFWriter,
    plans: list[TensorPlan],
    load: Callable[[TensorPlan], np.ndarray],
    say: ProgressFn,
) -> None:
    """Header, metadata and tensor table first, then each tensor converted and appended."""
    for plan in plans:
        writer.add_tensor_info(plan.name, plan.shape, np.dtype(np.float32), plan.nbytes,
                               raw_dtype=plan.qtype)  # fmt: skip
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for index, plan in enumerate(plans):
        if index % 8 == 0:
            say(f"writing GGUF tensors ({index}/{len(plans)})", index / len(plans))
        writer.write_tensor_data(_encode(plan, load(plan)))
    say(f"writing GGUF tensors ({len(plans)}/{len(plans)})", 1.0)


# ---------------------------------------------------------------------------
# Adapter alone
# ---------------------------------------------------------------------------


def write_adapter_gguf(
    adapter_dir: Path, config: dict[str, Any], path: Path, name: str,
    progress: ProgressFn | None = None,
) -> GgufSummary:  # fmt: skip
    """Write a PEFT LoRA adapter as a llama.cpp LoRA GGUF for the base model's `config`.

    Raises:
        UnsupportedModelError: the base architecture, or an adapter feature llama.cpp's
            LoRA format cannot express (DoRA, per-module ranks, fully trained modules).
    """
    from safetensors import safe_open

    arch = gguf_architecture(config)
    settings = json.loads((adapter_dir / "adapter_config.json").read_text())
    alpha = adapter_alpha(settings)
    weights = adapter_dir / "adapter_model.safetensors"
    with safe_open(str(weights), framework="pt") as handle:
        plans = _adapter_plans({k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()},  # noqa: SIM118
                               config, arch)  # fmt: skip
        writer = GGUFWriter(path, arch)
        try:
            writer.add_type(GGUFType.ADAPTER)
            writer.add_name(name)
            writer.add_string(Keys.Adapter.TYPE, "lora")
            writer.add_float32(Keys.Adapter.LORA_ALPHA, alpha)
            load = lambda plan: handle.get_tensor(plan.source)  # noqa: E731
            _write_tensors(writer, plans, load, progress or no_progress)
        finally:
            writer.close()
    return verify_gguf(path, plans, None)


def adapter_alpha(settings: dict[str, Any]) -> float:
    """The alpha llama.cpp needs (it scales by alpha / r), refusing what it cannot express."""
    refusals = {
        "use_dora": "DoRA adapters",
        "rank_pattern": "per-module ranks (rank_pattern)",
        "alpha_pattern": "per-module alphas (alpha_pattern)",
        "modules_to_save": "fully trained modules (modules_to_save)",
    }
    for key, what in refusals.items():
        if settings.get(key):
            raise UnsupportedModelError(
                f"llama.cpp's LoRA format cannot hold {what}",
                hint="export a merged GGUF (--gguf) instead: the adapter is merged in first",
            )
    rank, alpha = int(settings["r"]), float(settings["lora_alpha"])
    # rsLoRA scales by alpha / sqrt(r); llama.cpp by alpha / r: store alpha * sqrt(r).
    return alpha * math.sqrt(rank) if settings.get("use_rslora") else alpha


def _adapter_plans(
    shapes: dict[str, tuple[int, ...]], config: dict[str, Any], arch: str
) -> list[TensorPlan]:
    """lora_a / lora_b pairs named after the GGUF base tensor, in layer order."""
    from gguf import MODEL_ARCH, get_tensor_name_map

    names = get_tensor_name_map(MODEL_ARCH.LLAMA if arch == "llama" else MODEL_ARCH.QWEN2,
                                int(config["num_hidden_layers"]))  # fmt: skip
    plans = []
    for key in sorted(k for k in shapes if ".lora_A." in k):
        base = key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
        gguf_name = names.get_name(base, try_suffixes=(".weight",))
        b_key = key.replace(".lora_A.", ".lora_B.")
        if gguf_name is None or b_key not in shapes:
            raise UnsupportedModelError(
                f"the adapter has a tensor llama.cpp's LoRA format cannot place: {key}",
                hint="export a merged GGUF (--gguf) instead",
            )
        plans.append(TensorPlan(key, f"{gguf_name}.lora_a", shapes[key], ADAPTER_TYPE))
        plans.append(TensorPlan(b_key, f"{gguf_name}.lora_b", shapes[b_key], ADAPTER_TYPE,
                                rotary_heads(base, config, arch)))  # fmt: skip
    unpaired = [k for k in shapes if ".lora_A." not in k and ".lora_B." not in k]
    if unpaired or not plans:
        raise UnsupportedModelError(
            f"the adapter holds tensors that are not LoRA pairs: {', '.join(unpaired[:3])}"
            if unpaired else "the adapter holds no LoRA pairs",
            hint="export a merged GGUF (--gguf) instead",
        )  # fmt: skip
    return sorted(plans, key=lambda plan: _layer_order(plan.name))


def _layer_order(name: str) -> tuple[int, str]:
    parts = name.split(".")
    return (int(parts[1]) if parts[0] == "blk" else -1, name)


# ---------------------------------------------------------------------------
# Reading back
# ---------------------------------------------------------------------------


def verify_gguf(path: Path, plans: list[TensorPlan], vocab_size: int | None) -> GgufSummary:
    """Read the file's header back and check it holds exactly what was planned.

    Raises:
        GgufCheckError: a tensor missing, extra, of another shape or type, or a vocabulary
            of another size.
    """
    header = read_header(path)
    summary = read_summary(path, header)
    found = {t.name: t for t in header.tensors}
    problems = []
    if len(header.tensors) != len(plans):
        problems.append(f"{len(header.tensors)} tensors instead of {len(plans)}")
    for plan in plans:
        tensor = found.get(plan.name)
        if tensor is None:
            problems.append(f"{plan.name} is missing")
            continue
        if tensor.shape != plan.shape or tensor.ggml_type != plan.qtype:
            problems.append(f"{plan.name} is {_type_name(tensor.ggml_type)} {tensor.shape}, "
                            f"not {plan.qtype.name} {plan.shape}")  # fmt: skip
    if vocab_size is not None and summary.vocab_size != vocab_size:
        problems.append(f"{summary.vocab_size} tokens instead of {vocab_size}")
    if problems:
        raise GgufCheckError(
            f"{path.name} does not read back as written: {'; '.join(problems[:3])}",
            hint="nothing was exported; report this with the model's config.json",
        )
    return summary


def read_summary(path: Path, header: GgufHeader | None = None) -> GgufSummary:
    """Architecture, tensor count and types, vocabulary size and LoRA alpha of a GGUF."""
    header = header or read_header(path)
    types: dict[str, int] = {}
    for tensor in header.tensors:
        name = _type_name(tensor.ggml_type)
        types[name] = types.get(name, 0) + 1
    alpha = header.fields.get(Keys.Adapter.LORA_ALPHA)
    return GgufSummary(
        path, str(header.fields.get(Keys.General.ARCHITECTURE, "")), len(header.tensors),
        header.array_lengths.get(Keys.Tokenizer.LIST), types,
        float(alpha) if alpha is not None else None,
    )  # fmt: skip


def _type_name(ggml_type: int) -> str:
    try:
        return GGMLQuantizationType(ggml_type).name
    except ValueError:
        return f"type {ggml_type}"
