"""Where the model goes next: the command that serves an export, printed with its summary.

- adapter: vLLM with LoRA, `vllm serve BASE --enable-lora --lora-modules NAME=DIR` (and
  `--max-lora-rank` when r is above vLLM's default of 16);
- merged: `vllm serve DIR`;
- GGUF model: `llama-server -m FILE`; GGUF adapter: `llama-server -m BASE.gguf --lora FILE`
  when the base GGUF is known (a model converted from a GGUF, such as the embedded default).

BASE is the base model as this machine has it: its local directory for an embedded or
local model, its hub id for a hub model (vLLM fetches it where there is network).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from engine.config.build import TrainConfig

VLLM_DEFAULT_MAX_LORA_RANK = 16
"""vLLM refuses adapters of a higher rank unless --max-lora-rank says so."""


def serve_commands(
    cfg: TrainConfig, kind: str, out: Path, files: list[str], run_id: str
) -> list[str]:
    """One line per way to serve what `out` holds, with absolute paths."""
    out = out.resolve()
    if kind == "adapter":
        rank = f" --max-lora-rank {cfg.lora.r}" if cfg.lora.r > VLLM_DEFAULT_MAX_LORA_RANK else ""
        return [
            f"vLLM: vllm serve {_q(serving_base(cfg.model))} --enable-lora "
            f"--lora-modules {lora_name(run_id)}={_q(out)}{rank}"
        ]
    if kind == "merged":
        return [f"vLLM: vllm serve {_q(out)}"]
    ggufs = [name for name in files if name.endswith(".gguf")]
    if kind == "gguf" and ggufs:
        return [f"llama.cpp: llama-server -m {_q(out / ggufs[0])}"]
    if kind == "gguf-adapter" and ggufs:
        base = _base_gguf(cfg)
        if base is not None:
            return [f"llama.cpp: llama-server -m {_q(base)} --lora {_q(out / ggufs[0])}"]
    return []


def serving_base(model: str) -> str:
    """The base model as vLLM should be given it: a local directory, or the hub id."""
    from engine.model.resolve import EMBEDDED, resolve_model

    path = Path(model).expanduser()
    if model in EMBEDDED or path.exists():
        return str(resolve_model(model).resolve())
    return model


def lora_name(run_id: str) -> str:
    """The adapter's name in vLLM's API (the `model` field of a request)."""
    return f"tunedeck-{run_id}".lower()


def _base_gguf(cfg: TrainConfig) -> Path | None:
    from engine.export.gguf.run import base_config, source_gguf

    return source_gguf(base_config(cfg)[0])


def _q(path: Path | str) -> str:
    return shlex.quote(str(path))
