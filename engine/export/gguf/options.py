"""The choices of a GGUF export, importable without gguf or numpy (the CLI parser and the
TUI read them; the writer lives in engine.export.gguf.writer)."""

from __future__ import annotations

from typing import Literal

Quant = Literal["f16", "q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k"]
QUANTS: tuple[Quant, ...] = ("f16", "q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k")
WrittenQuant = Literal["f16", "q8_0", "q4_0"]
"""The types tunedeck's own writer stores; the K-quants are made from its f16 file."""
K_QUANTS: tuple[Quant, ...] = ("q4_k_m", "q5_k_m", "q6_k")
"""Quantised by llama.cpp's own quantizer (the optional `tunedeck[gguf]` extra)."""
DEFAULT_QUANT: Quant = "q8_0"
QUANT_NOTES = {
    "f16": "16-bit floats: the merged model exactly, 2 bytes a weight",
    "q8_0": "8-bit blocks: near-lossless, about half of f16 (the default)",
    "q4_0": "4-bit blocks: a quarter of f16, answers drift (embedding kept at q8_0)",
    "q4_k_m": "llama.cpp's Q4_K_M (Ollama's default): ~4.9 bits a weight, needs tunedeck[gguf]",
    "q5_k_m": "llama.cpp's Q5_K_M: ~5.7 bits a weight, needs tunedeck[gguf]",
    "q6_k": "llama.cpp's Q6_K: ~6.6 bits a weight, close to q8_0, needs tunedeck[gguf]",
}
"""One line per type, for `--help` and the Export step."""
GGUF_EXTRA = "pip install 'tunedeck[gguf]'"
"""What installs llama.cpp's quantizer (llama-cpp-python; compiles llama.cpp, ~15 min on
2 cores)."""


def quantizer_available() -> bool:
    """Whether llama-cpp-python is installed (found, not imported: it loads a C library)."""
    from importlib.util import find_spec

    return find_spec("llama_cpp") is not None
