"""Hub models on a GPU box, with the hub faked (no network here): what is fetched, and
what a user is told when a model cannot be had."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from engine.core.errors import ModelNotFoundError
from engine.model import resolve as models

REPO = "mistralai/Mistral-7B-Instruct-v0.3"


class FakeHub:
    """snapshot_download / hf_hub_download: records each call, serves or raises."""

    def __init__(self, tmp_path: Path, source: Path | None, error: type | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.root, self.source, self.error = tmp_path / "hub", source, error

    def snapshot_download(self, repo_id: str, **kwargs: Any) -> str:
        self.calls.append(kwargs)
        if kwargs.get("local_files_only"):
            raise type("LocalEntryNotFoundError", (Exception,), {})("not cached")
        if self.error is not None:
            raise self.error("the hub said no")
        from huggingface_hub.utils import filter_repo_objects

        assert self.source is not None
        target = self.root / repo_id
        names = [p.name for p in self.source.iterdir()]
        for name in filter_repo_objects(
            names,
            allow_patterns=kwargs["allow_patterns"],
            ignore_patterns=kwargs["ignore_patterns"],
        ):
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.source / name, target / name)
        return str(target)


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)


def mistral_like(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """A repo as Mistral publishes it: HF weights and its own consolidated copy."""
    repo = tmp_path / "repo"
    shutil.copytree(tiny_model_dir, repo)
    shutil.copy(repo / "model.safetensors", repo / "consolidated.safetensors")
    (repo / "params.json").write_text("{}")
    return repo


def test_a_download_fetches_one_set_of_weights(
    online, monkeypatch, tmp_path: Path, tiny_model_dir: Path
) -> None:
    hub = FakeHub(tmp_path, mistral_like(tmp_path, tiny_model_dir))
    monkeypatch.setattr("huggingface_hub.snapshot_download", hub.snapshot_download)
    path = models.resolve_model(REPO)
    assert (path / "model.safetensors").is_file()
    assert not (path / "consolidated.safetensors").exists()
    assert [c.get("local_files_only", False) for c in hub.calls] == [True, False]


def test_a_token_count_fetches_the_tokenizer_only(
    online, monkeypatch, tmp_path: Path, tiny_model_dir: Path
) -> None:
    hub = FakeHub(tmp_path, mistral_like(tmp_path, tiny_model_dir))
    monkeypatch.setattr("huggingface_hub.snapshot_download", hub.snapshot_download)
    tokenizer = models.load_tokenizer(REPO)
    assert tokenizer.chat_template
    fetched = {p.name for p in (hub.root / REPO).iterdir()}
    assert not any(name.endswith(".safetensors") for name in fetched)
    assert "tokenizer.json" in fetched or "tokenizer_config.json" in fetched


@pytest.mark.parametrize(
    ("error", "words"),
    [
        ("GatedRepoError", "gated: accept the licence on https://huggingface.co/"),
        ("RepositoryNotFoundError", "check the spelling"),
        ("ConnectionError", "check the network"),
    ],
)
def test_a_model_that_cannot_be_had_fails_before_a_run_with_its_cause(
    online, monkeypatch, tmp_path: Path, error: str, words: str
) -> None:
    hub = FakeHub(tmp_path, None, type(error, (Exception,), {}))
    monkeypatch.setattr("huggingface_hub.snapshot_download", hub.snapshot_download)
    with pytest.raises(ModelNotFoundError) as caught:
        models.ensure_model_available(REPO)
    assert words in caught.value.hint
    if error == "GatedRepoError":
        assert "HF_TOKEN" in caught.value.hint and "gated" in caught.value.message


def test_offline_says_offline_and_how_to_get_online(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(ModelNotFoundError) as caught:
        models.ensure_model_available("Qwen/Qwen2.5-0.5B-Instruct")
    assert "offline (HF_HUB_OFFLINE=1)" in caught.value.message
    assert "unset HF_HUB_OFFLINE" in caught.value.hint


def test_local_and_embedded_models_are_checked_without_converting(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    models.ensure_model_available(str(tiny_model_dir))
    with pytest.raises(ModelNotFoundError):
        models.ensure_model_available(str(tmp_path / "missing"))


def test_the_estimate_reads_a_hub_models_config_alone(online, monkeypatch) -> None:
    asked: list[tuple[str, bool]] = []

    def fake_download(repo_id: str, filename: str, local_files_only: bool = False) -> str:
        asked.append((filename, local_files_only))
        raise type("LocalEntryNotFoundError", (Exception,), {})("no network here")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake_download)
    assert models.hub_model_config(REPO) is None
    assert asked == [("config.json", True), ("config.json", False)]
    assert models.hub_model_config("not a hub id") is None


def test_the_wizards_estimate_uses_a_cached_hub_config_without_asking_the_hub(
    monkeypatch, tmp_path: Path, tiny_model_dir: Path
) -> None:
    """engine.config.recipe.local_model_config: a hub id's config.json from the cache only."""
    from engine.config.recipe import local_model_config

    asked: list[bool] = []

    def fake_download(repo_id: str, filename: str, local_files_only: bool = False) -> str:
        asked.append(local_files_only)
        return str(tiny_model_dir / filename)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake_download)
    config = local_model_config(REPO)
    assert config is not None and config["model_type"] == "llama"
    assert asked == [True]  # the cache, never the network, where the wizard waits
