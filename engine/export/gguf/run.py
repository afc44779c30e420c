"""A run's GGUF export: the merged model (`--gguf`) or the adapter alone (`--gguf-adapter`),
with an Ollama Modelfile, written into the export's temporary directory.

`check_gguf_export` runs before any work (no torch): an unsupported architecture is
refused up front, naming it and the supported ones. The merge happens in memory (one copy
of the model, 16/32-bit), and the GGUF is streamed from it tensor by tensor. A K-quant
(q4_k_m, q5_k_m, q6_k) is that f16 file quantised by llama.cpp's own quantizer
(engine.export.gguf.kquant), refused up front when the `tunedeck[gguf]` extra is missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from engine.config.build import TrainConfig
from engine.core.layout import ADAPTER_DIR, DATA_DIR, TRAIN_FILE
from engine.export.gguf.modelfile import (
    chat_format,
    data_system_prompts,
    default_system,
    render_modelfile,
)
from engine.export.gguf.options import K_QUANTS, Quant, WrittenQuant
from engine.export.gguf.tensors import gguf_architecture
from engine.export.gguf.vocab import SOURCE_MARKER
from engine.export.gguf.writer import (
    GgufCheckError,
    GgufSummary,
    read_summary,
    write_adapter_gguf,
    write_model_gguf,
)
from engine.export.merge import merged_model

ProgressFn = Callable[[str, float], None]
MODELFILE = "Modelfile"


def model_file_name(quant: Quant) -> str:
    """`model-q8_0.gguf`."""
    return f"model-{quant}.gguf"


ADAPTER_FILE = "lora-adapter-f16.gguf"
F16_INTERMEDIATE = ".f16-for-llama-quantize.gguf"
"""The f16 file a K-quant is made from, inside the export's temporary directory."""


def base_config(cfg: TrainConfig) -> tuple[Path, dict[str, Any]]:
    """The base model's directory and config.json."""
    from engine.model.resolve import resolve_model
    from engine.model.shapes import read_model_config

    base = resolve_model(cfg.model)
    return base, read_model_config(base)


def check_gguf_export(cfg: TrainConfig, quant: Quant | None = None) -> str:
    """The GGUF architecture of the run's base model; raises before any work if it is
    unsupported, or if `quant` needs llama.cpp's quantizer and it is not installed."""
    from engine.export.gguf.kquant import check_quantizer

    if quant is not None:
        check_quantizer(quant)
    return gguf_architecture(base_config(cfg)[1])


def write_gguf_model(
    run_dir: Path, cfg: TrainConfig, out: Path, quant: Quant, say: ProgressFn
) -> list[str]:
    """Merge the adapter in memory, stream it into `out/model-<quant>.gguf`, add a Modelfile.

    Returns the notes for the summary (what was read back, the `ollama create` hint).
    """
    base, config = base_config(cfg)

    def merged_state() -> Any:
        say("merging the adapter into the base model in memory (16/32-bit)", 0.05)
        return merged_model(cfg, run_dir / ADAPTER_DIR).state_dict()

    name = model_file_name(quant)
    title = f"{run_dir.name} ({cfg.model})"
    if quant in K_QUANTS:
        summary = _write_k_quant(merged_state, config, base, out / name, quant, title, say)
    else:
        summary = write_model_gguf(
            merged_state, config, base, out / name, cast(WrittenQuant, quant), title,
            lambda stage, fraction: say(stage, 0.2 + 0.6 * fraction),
        )  # fmt: skip
    say("writing the Ollama Modelfile", 0.92)
    system_note = _write_modelfile(run_dir, cfg, base, out, f"./{name}", None)
    return [_read_back(summary), *system_note, ollama_hint(run_dir.name)]


def _write_k_quant(
    merged_state: Callable[[], Any], config: dict[str, Any], base: Path, path: Path,
    quant: Quant, title: str, say: ProgressFn,
) -> GgufSummary:  # fmt: skip
    """tunedeck's f16 file, quantised by llama.cpp's own quantizer into `path`; the f16
    file is deleted. The result is read back: the same tensors and vocabulary."""
    from engine.export.gguf.kquant import quantize_gguf

    f16 = path.with_name(F16_INTERMEDIATE)
    written = write_model_gguf(
        merged_state, config, base, f16, "f16", title,
        lambda stage, fraction: say(stage, 0.2 + 0.5 * fraction),
    )  # fmt: skip
    try:
        say(f"quantising to {quant} with llama.cpp", 0.75)
        quantize_gguf(f16, path, quant)
    finally:
        f16.unlink(missing_ok=True)
    summary = read_summary(path)
    if summary.tensors != written.tensors or summary.vocab_size != written.vocab_size:
        raise GgufCheckError(
            f"{path.name} does not read back as the f16 file it was made from: "
            f"{summary.tensors} tensors / {summary.vocab_size} tokens instead of "
            f"{written.tensors} / {written.vocab_size}",
            hint="nothing was exported; report this with llama-cpp-python's version",
        )
    return summary


def write_gguf_adapter(run_dir: Path, cfg: TrainConfig, out: Path, say: ProgressFn) -> list[str]:
    """Write the adapter as `out/lora-adapter-f16.gguf`; a Modelfile when the base GGUF is
    known (a model converted from a GGUF, such as the embedded default)."""
    base, config = base_config(cfg)
    summary = write_adapter_gguf(
        run_dir / ADAPTER_DIR, config, out / ADAPTER_FILE, f"{run_dir.name} LoRA",
        lambda stage, fraction: say(stage, 0.1 + 0.8 * fraction),
    )  # fmt: skip
    pairs = summary.tensors // 2
    notes = [f"read back: {pairs} LoRA pairs (lora_a/lora_b), alpha {summary.alpha:g}, "
             f"{summary.architecture}"]  # fmt: skip
    base_gguf = source_gguf(base)
    if base_gguf is None:
        notes.append(
            f"llama.cpp: llama-cli -m BASE.gguf --lora {ADAPTER_FILE} (BASE: a GGUF of "
            f"{cfg.model}); Ollama: FROM it, ADAPTER ./{ADAPTER_FILE}"
        )
        return notes
    say("writing the Ollama Modelfile", 0.92)
    notes += _write_modelfile(run_dir, cfg, base, out, str(base_gguf), f"./{ADAPTER_FILE}")
    notes.append(ollama_hint(run_dir.name))
    return notes


def source_gguf(base: Path) -> Path | None:
    """The GGUF a converted base model came from, if it is still there."""
    try:
        source = Path(json.loads((base / SOURCE_MARKER).read_text())["source"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return source if source.is_file() else None


def ollama_hint(run_id: str) -> str:
    """The one-line `ollama create` command for the export directory."""
    return f"Ollama: cd into the export, then ollama create {ollama_name(run_id)} -f Modelfile"


def ollama_name(run_id: str) -> str:
    """A model name Ollama accepts (lower case, no spaces)."""
    return f"tunedeck-{run_id}".lower()


def _read_back(summary: GgufSummary) -> str:
    types = ", ".join(f"{count} {kind}" for kind, count in sorted(summary.types.items()))
    return (f"read back: {summary.tensors} tensors ({types}), {summary.vocab_size} tokens, "
            f"{summary.architecture}")  # fmt: skip


def _write_modelfile(
    run_dir: Path, cfg: TrainConfig, base: Path, out: Path, source: str, adapter: str | None
) -> list[str]:
    """Write out/Modelfile; notes about the system prompt, if any."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    fmt = chat_format(tokenizer.chat_template)
    prompts = data_system_prompts(run_dir / DATA_DIR / TRAIN_FILE)
    system, note = None, None
    if len(prompts) == 1 and "" not in prompts:
        system = next(iter(prompts))
    elif len(prompts) > 1:
        note = (f"the training data had {len(prompts)} different system prompts: "
                "send the one you need with each chat")  # fmt: skip
    elif fmt is not None and tokenizer.chat_template:
        chat = [{"role": "user", "content": "Hi"}]
        rendered = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        system = default_system(fmt, str(rendered))
    text = render_modelfile(source, fmt, system, cfg.max_seq_len, adapter, note)
    (out / MODELFILE).write_text(text, encoding="utf-8")
    return [note] if note else []


def gguf_usage(run_id: str, cfg: TrainConfig, adapter: bool, quant: Quant) -> str:
    """The model card's section on running the export with llama.cpp and Ollama."""
    name = ollama_name(run_id)
    if adapter:
        return (
            "## Use it with llama.cpp or Ollama\n\n"
            f"`{ADAPTER_FILE}` is the LoRA adapter alone, for a GGUF of the base model "
            f"`{cfg.model}` that you already have (any quantisation):\n\n"
            f"```sh\nllama-cli -m BASE.gguf --lora {ADAPTER_FILE} -cnv\n```\n\n"
            "With Ollama, a Modelfile names the base GGUF in `FROM` and this file in "
            "`ADAPTER` (written here when the base GGUF is known):\n\n"
            f"```sh\nollama create {name} -f Modelfile\nollama run {name}\n```\n\n"
        )
    file = model_file_name(quant)
    return (
        "## Use it with llama.cpp or Ollama\n\n"
        f"`{file}` is the whole model with the adapter merged in ({quant}), with its "
        "tokenizer and chat template:\n\n"
        f"```sh\nllama-cli -m {file} -cnv\nllama-server -m {file} --port 8080\n```\n\n"
        "Ollama reads the `Modelfile` beside it (chat template, stop tokens, system "
        f"prompt, context of {cfg.max_seq_len} tokens):\n\n"
        f"```sh\nollama create {name} -f Modelfile\nollama run {name}\n```\n\n"
        "LM Studio and other llama.cpp front ends open the .gguf file directly.\n\n"
    )
