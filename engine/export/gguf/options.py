"""The choices of a GGUF export, importable without gguf or numpy (the CLI parser and the
TUI read them; the writer lives in engine.export.gguf.writer)."""

from __future__ import annotations

from typing import Literal

Quant = Literal["f16", "q8_0", "q4_0"]
QUANTS: tuple[Quant, ...] = ("f16", "q8_0", "q4_0")
DEFAULT_QUANT: Quant = "q8_0"
QUANT_NOTES = {
    "f16": "16-bit floats: the merged model exactly, 2 bytes a weight",
    "q8_0": "8-bit blocks: near-lossless, about half of f16 (the default)",
    "q4_0": "4-bit blocks: a quarter of f16, answers drift (embedding kept at q8_0)",
}
"""One line per type, for `--help` and the Export step."""
