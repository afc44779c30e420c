"""Loading a model to run it: the device, the one NF4 config, the base, the adapter.

Training, evaluation, the playground and the judge load the base model through here, so an
adapter is always evaluated on exactly the base it was trained on (NF4 for QLoRA, with the
same compute type). Export reloads the base unquantised on purpose (engine.export.merge).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.core.errors import ModelLoadError
from engine.model.resolve import DEFAULT_MODEL, ProgressFn, load_tokenizer, resolve_model


def pick_device(bf16: str = "auto") -> tuple[str, Any]:
    """CUDA with bf16 where the GPU has it natively (fp16 otherwise), else CPU with fp32.

    `bf16 = "on"` forces bf16, also on CPU: on CPUs with AMX tiles (Intel Sapphire Rapids
    and later) that is about twice as fast, at a slightly higher loss after the same
    steps (bench/RESULTS.md), so "auto" keeps fp32 there. `"off"` keeps fp32 everywhere.
    """
    import torch

    if bf16 == "off":
        return ("cuda" if torch.cuda.is_available() else "cpu"), torch.float32
    if torch.cuda.is_available():
        # Real bf16 units only (Ampere and later): T4/V100 "support" it by emulation,
        # several times slower than fp16 with a loss scaler (the Trainer adds one).
        if bf16 == "on" or torch.cuda.is_bf16_supported(including_emulation=False):
            return "cuda", torch.bfloat16
        return "cuda", torch.float16
    return "cpu", torch.bfloat16 if bf16 == "on" else torch.float32


def nf4_config(dtype: Any, sharded: bool = False) -> Any:
    """QLoRA's 4-bit base: NF4 with double quantisation, computing in `dtype` (the QLoRA
    paper's settings). Sharded (FSDP) models also store the 4-bit weights in `dtype`, so
    FSDP can shard them alongside the rest."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
        **({"bnb_4bit_quant_storage": dtype} if sharded else {}),
    )


@contextlib.contextmanager
def model_load_errors(name: str, path: Path) -> Iterator[None]:
    """Turn whatever from_pretrained raises into a ModelLoadError that names the model."""
    try:
        yield
    except Exception as exc:
        raise ModelLoadError(
            f"could not load the model {name} from {path}: {type(exc).__name__}: {exc}",
            hint="check that the directory is complete (config.json and *.safetensors)",
        ) from exc


def load_base_model(model_name: str, method: str, bf16: str) -> tuple[Any, str]:
    """(model, device) for inference, the base held as in training (NF4 for qlora).

    The adapter was trained on top of that exact base, so evaluating it on a different
    precision would measure something else.
    """
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # progress goes to our events, not tqdm bars
    device, dtype = pick_device(bf16)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if method == "qlora":
        kwargs["quantization_config"] = nf4_config(dtype)
        kwargs["device_map"] = {"": device if device == "cpu" else 0}
    path = resolve_model(model_name)
    with model_load_errors(model_name, path):
        model: Any = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if method != "qlora":
        model.to(device)
    model.eval()
    return model, device


def attach_adapter(model: Any, adapter_dir: Path, name: str) -> Any:
    """The model with a LoRA adapter loaded under `name` and made active.

    The first call wraps the base in a PeftModel; later calls add adapters beside it
    (checkpoints), so the base weights are loaded once.
    """
    from peft import PeftModel

    if isinstance(model, PeftModel):
        if name in model.peft_config:
            model.delete_adapter(name)  # reload: the weights on disk may be newer
        model.load_adapter(str(adapter_dir), adapter_name=name)
        model.set_adapter(name)
        return model
    wrapped = PeftModel.from_pretrained(model, str(adapter_dir), adapter_name=name)
    wrapped.eval()
    return wrapped


def load_causal_lm(
    name: str = DEFAULT_MODEL, progress: ProgressFn | None = None, dtype: Any = None
) -> tuple[Any, Any]:
    """Load (model, tokenizer) for inference on CPU or the default device."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(name, progress)
    path = resolve_model(name)
    with model_load_errors(name, path):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or "auto")
    model.eval()
    return model, tokenizer
