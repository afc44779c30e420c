"""Where tunedeck keeps its files: $TUNEDECK_HOME (default: the XDG user data dir)."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir


def tunedeck_home() -> Path:
    """The root of runs and the model cache; `$TUNEDECK_HOME` overrides the XDG default."""
    env = os.environ.get("TUNEDECK_HOME")
    return Path(env).expanduser() if env else Path(user_data_dir("tunedeck", appauthor=False))


def models_dir() -> Path:
    """Converted models (safetensors + tokenizer), one directory per model name."""
    return tunedeck_home() / "models"


def runs_dir() -> Path:
    """One directory per run; engine.core.layout names its files."""
    return tunedeck_home() / "runs"


def sample_data_dir() -> Path:
    """The bundled sample datasets (shipped inside the wheel as the `sample_data` package)."""
    import sample_data

    return Path(sample_data.__file__).parent
