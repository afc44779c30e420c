"""Converting a GGUF file into a Hugging Face model directory, once, under a lock.

transformers' own GGUF loader dequantises the file (~20 s for the default model); the
result is saved as safetensors with the tokenizer, and a marker file written last says the
directory is complete. engine.model.resolve calls it for embedded models and .gguf paths.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from engine.core.errors import ModelLoadError

# Written last into a converted model directory; its presence means "complete".
MARKER = "tunedeck-model.json"

ProgressFn = Callable[[str, float], None]
"""Called with a stage description and the fraction of the whole job done (0..1)."""


def no_progress(stage: str, fraction: float) -> None:
    """Default progress callback: stay silent."""


def is_complete_model_dir(path: Path) -> bool:
    """A converted directory counts only once its marker is written (atomic rename)."""
    return (path / MARKER).is_file() and (path / "config.json").is_file()


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialise conversions of one model across processes (two viewers, two CLIs)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def convert_gguf(gguf: Path, target: Path, progress: ProgressFn | None = None) -> Path:
    """Dequantise a GGUF into a safetensors + tokenizer directory at `target`, once.

    Writes into a temporary sibling and renames it into place when complete, so an
    interrupted conversion never looks like a usable model.
    """
    progress = progress or no_progress
    with _exclusive(target.parent / f".{target.name}.lock"):
        if is_complete_model_dir(target):
            return target  # another process finished it while we waited
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _convert_into(gguf, tmp, progress)
            if target.exists():
                shutil.rmtree(target)  # an incomplete leftover without marker
            os.replace(tmp, target)
        except OSError as exc:
            raise ModelLoadError(
                f"could not write the converted model to {target}: {exc.strerror or exc}",
                hint="check free disk space (the default model needs ~600 MB) and "
                "permissions of $TUNEDECK_HOME",
            ) from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    progress("ready", 1.0)
    return target


def _convert_into(gguf: Path, out: Path, progress: ProgressFn) -> None:
    started = time.monotonic()
    progress(f"loading the ML stack to convert {gguf.name}", 0.02)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own stages replace transformers' tqdm bars
    try:
        progress("reading the tokenizer and chat template from the GGUF", 0.08)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        progress("dequantising weights (the slow part, ~20 s)", 0.3)
        model: Any = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except Exception as exc:
        raise ModelLoadError(
            f"could not read {gguf}: {type(exc).__name__}: {exc}",
            hint="the file may be truncated or a GGUF architecture transformers cannot load",
        ) from exc
    finally:
        hf_logging.enable_progress_bar()
    # save_pretrained refuses a model that still carries the GGUF quantizer marker.
    model.hf_quantizer = None
    model.config.quantization_config = None
    progress("writing safetensors and tokenizer", 0.85)
    out.mkdir(parents=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    stat = gguf.stat()
    marker: dict[str, Any] = {
        "source": str(gguf),
        "source_size": stat.st_size,
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.monotonic() - started, 1),
        "dtype": str(model.dtype).removeprefix("torch."),
    }
    (out / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
