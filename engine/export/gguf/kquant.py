"""K-quant GGUF (Q4_K_M, Q5_K_M, Q6_K) through llama.cpp's own quantizer.

tunedeck writes f16, q8_0 and q4_0 itself (engine.export.gguf.writer). The K-quants mix
block types per tensor by llama.cpp's rules (attention V and the FFN down matrices of some
layers one step finer, fallbacks for rows that are not a multiple of 256), which only
llama.cpp's `llama_model_quantize` lays out as `llama-quantize` does; tunedeck calls it on
its own f16 file through llama-cpp-python, the optional `tunedeck[gguf]` extra.

llama.cpp logs every tensor on stderr while it quantises; the lines are kept and shown
only when it fails.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

from engine.core.errors import TunedeckError
from engine.export.gguf.options import GGUF_EXTRA, K_QUANTS, Quant, quantizer_available

LLAMA_FTYPES = {"q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}
"""llama.cpp's `enum llama_ftype` (LLAMA_FTYPE_MOSTLY_Q4_K_M, ..._Q5_K_M, ..._Q6_K)."""
LOG_TAIL = 6
"""llama.cpp log lines quoted in the error when quantisation fails."""


class QuantizerError(TunedeckError):
    """llama.cpp's quantizer is missing or failed."""


def check_quantizer(quant: Quant) -> None:
    """Refuse a K-quant export before any work when llama-cpp-python is missing.

    Raises:
        QuantizerError: naming the extra that installs it.
    """
    if quant in K_QUANTS and not quantizer_available():
        raise QuantizerError(
            f"{quant} is quantised by llama.cpp's own quantizer, which is not installed",
            hint=f"{GGUF_EXTRA} (it compiles llama.cpp, ~15 min on 2 cores); "
            "f16, q8_0 and q4_0 need nothing more",
        )


def quantize_gguf(source: Path, target: Path, quant: Quant, threads: int | None = None) -> None:
    """Quantise the f16 GGUF `source` into `target` as llama-quantize would.

    Raises:
        QuantizerError: the extra is missing, or llama.cpp refused the file.
    """
    check_quantizer(quant)
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = LLAMA_FTYPES[quant]
    params.nthread = threads or os.cpu_count() or 1
    lines: list[str] = []
    llama_cpp.llama_backend_init()
    with _captured_log(llama_cpp, lines):
        code = llama_cpp.llama_model_quantize(
            str(source).encode(), str(target).encode(), ctypes.byref(params)
        )
    if code != 0 or not target.is_file():
        said = " | ".join(line.strip() for line in lines[-LOG_TAIL:] if line.strip())
        raise QuantizerError(
            f"llama.cpp could not quantise {source.name} to {quant} (code {code})"
            + (f": {said}" if said else ""),
            hint="nothing was exported; the f16 and q8_0 exports do not need llama.cpp",
        )


class _captured_log:  # noqa: N801 - used as a context manager
    """Route llama.cpp's log into `lines` while quantising, then back to llama-cpp-python's
    own logger (which prints errors only unless a model is loaded verbose)."""

    def __init__(self, llama_cpp: Any, lines: list[str]) -> None:
        self.llama_cpp, self.lines = llama_cpp, lines

        def keep(_level: int, text: bytes, _user: Any) -> None:
            self.lines.append(text.decode("utf-8", "replace"))

        self.callback = llama_cpp.llama_log_callback(keep)  # kept alive while set

    def __enter__(self) -> None:
        self.llama_cpp.llama_log_set(self.callback, ctypes.c_void_p(0))

    def __exit__(self, *_exc: object) -> None:
        from llama_cpp._logger import llama_log_callback  # llama-cpp-python's own, as before

        self.llama_cpp.llama_log_set(llama_log_callback, ctypes.c_void_p(0))
