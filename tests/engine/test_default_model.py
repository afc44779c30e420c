"""The real embedded default model: converted once, cached, and answering. Slow (~40 s)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.model import convert
from engine.model.convert import MARKER
from engine.model.load import load_causal_lm
from engine.model.resolve import DEFAULT_MODEL, list_models, resolve_model

pytestmark = pytest.mark.slow


def test_first_use_converts_with_progress_then_the_cache_is_used(
    default_model_conversion: tuple[Path, list[tuple[str, float]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fresh home: the first resolution converts (with progress), the second uses it.

    The session's conversion (tests/conftest.py) is that first use; it is not repeated.
    """
    home, stages = default_model_conversion
    monkeypatch.setenv("TUNEDECK_HOME", str(home))
    assert stages, "the session's first resolution should have converted"
    fractions = [fraction for _, fraction in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(stages) >= 4

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("the cached copy should have been used")

    monkeypatch.setattr(convert, "_convert_into", no_second_conversion)
    path = resolve_model(DEFAULT_MODEL)
    assert (path / MARKER).is_file() and any(path.glob("*.safetensors"))
    assert (path / "tokenizer.json").is_file()
    assert path.is_relative_to(home)
    listed = {m.name: m for m in list_models()}
    assert listed[DEFAULT_MODEL].status == "ready"


def test_the_converted_default_answers_a_chat_prompt(
    default_model_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNEDECK_HOME", str(default_model_home))
    started = time.monotonic()
    model, tokenizer = load_causal_lm(DEFAULT_MODEL)
    load_seconds = time.monotonic() - started
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    output = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert answer.strip(), "the model should produce non-empty text"
    assert "Paris" in answer
    print(f"load from cache: {load_seconds:.1f}s; answer: {answer!r}")
