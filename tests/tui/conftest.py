"""A fake backend for Pilot tests: real dataset parsing, scripted models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.errors import TunedeckError
from engine.models import ModelInfo
from tests.conftest import REPO_ROOT
from tui.app import TunedeckApp
from tui.backend import Backend

SAMPLE = REPO_ROOT / "sample_data" / "support_tickets.jsonl"


class FakeBackend(Backend):
    """Parses datasets for real (cheap, no torch); models and preparation are scripted."""

    def __init__(self, fail_prepare: bool = False) -> None:
        self.fail_prepare = fail_prepare
        self.prepared: list[str] = []
        self.models = [
            ModelInfo("smollm2-135m", "embedded", True, "converts on first use (~20 s)", "/x.gguf"),
            ModelInfo("tiny-local", "converted", True, "ready", "/models/tiny-local"),
        ]

    def list_models(self) -> list[ModelInfo]:
        return list(self.models)

    def prepare_model(self, name: str, progress: Callable[[str, float], None]) -> Path:
        progress("reading the tokenizer", 0.25)
        progress("dequantising weights", 0.5)
        if self.fail_prepare:
            raise TunedeckError("disk full while writing", hint="free some space")
        self.prepared.append(name)
        self.models[0] = ModelInfo(name, "embedded", True, "ready", f"/models/{name}")
        return Path(f"/models/{name}")


@pytest.fixture
def make_app() -> Callable[..., TunedeckApp]:
    def factory(data: Path = SAMPLE, backend: Backend | None = None) -> TunedeckApp:
        return TunedeckApp(backend or FakeBackend(), data, "smollm2-135m")

    return factory
