"""Shared fixtures: an isolated $TUNEDECK_HOME, offline hub, and a tiny local model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The whole suite runs offline: nothing may reach the model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def tunedeck_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Each test gets its own empty $TUNEDECK_HOME so no test sees another's runs."""
    home = tmp_path_factory.mktemp("tunedeck_home")
    monkeypatch.setenv("TUNEDECK_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama + ChatML BPE tokenizer saved as a local HF model directory."""
    from tests.tiny_model import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    """The tiny model's tokenizer, loaded the way the engine loads any local model."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def default_model_conversion(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[tuple[str, float]]]:
    """A $TUNEDECK_HOME where the default model was converted from its GGUF (~25 s, once
    per session), and the progress stages that first use reported."""
    from engine.model.resolve import DEFAULT_MODEL, resolve_model

    home = tmp_path_factory.mktemp("default_model_home")
    stages: list[tuple[str, float]] = []
    saved = os.environ.get("TUNEDECK_HOME")
    os.environ["TUNEDECK_HOME"] = str(home)
    try:
        resolve_model(DEFAULT_MODEL, lambda stage, fraction: stages.append((stage, fraction)))
    finally:
        if saved is None:
            del os.environ["TUNEDECK_HOME"]
        else:
            os.environ["TUNEDECK_HOME"] = saved
    return home, stages


@pytest.fixture(scope="session")
def default_model_home(default_model_conversion: tuple[Path, list[tuple[str, float]]]) -> Path:
    """A $TUNEDECK_HOME holding the converted default model.

    Slow tests point TUNEDECK_HOME here so the GGUF is converted once, not per test.
    """
    return default_model_conversion[0]
