"""Export a run: the adapter, a merged model, or GGUF files for llama.cpp and Ollama, with a
model card, a reproducibility bundle and a run report, written so that an interrupted
export never looks complete.

Layout of `--out DIR`, by kind:
```
adapter       adapter_config.json + adapter_model.safetensors (PEFT)
merged        a full model (config.json, *.safetensors, tokenizer, chat template)
gguf          model-<quant>.gguf (the merged model: f16, q8_0, q4_0; q4_k_m, q5_k_m, q6_k
              by llama.cpp's quantizer) + Modelfile (Ollama)
gguf-adapter  lora-adapter-f16.gguf (llama.cpp --lora, Ollama ADAPTER) [+ Modelfile]
and always    README.md (model card), REPORT.md (run report),
DIR/tunedeck/ config.toml, manifest.json (split, source sha256), versions.json,
              events.jsonl, RERUN.md (the exact command to repeat the run)
```
Everything is written into a temporary sibling directory and renamed into place last.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from engine.config.build import TrainConfig, load_config
from engine.core.errors import TunedeckError
from engine.core.events import iter_all_events
from engine.core.files import fsync_tree
from engine.core.layout import ADAPTER_DIR, CONFIG_FILE, DATA_DIR, EVENTS_FILE, MANIFEST_FILE
from engine.export.gguf.options import DEFAULT_QUANT, Quant
from engine.export.merge import MERGED_BYTES_PER_PARAM
from engine.export.serve import serve_commands
from engine.runs.report import render_report

BUNDLE_DIR = "tunedeck"
VERSIONED_PACKAGES = (
    "tunedeck", "torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets",
    "safetensors", "tokenizers",
)  # fmt: skip
DISK_MARGIN = 1.2  # free space wanted over the estimated size of a merged export
ExportKind = Literal["adapter", "merged", "gguf", "gguf-adapter"]
KINDS: tuple[ExportKind, ...] = ("adapter", "merged", "gguf", "gguf-adapter")
KIND_TITLES = {"adapter": "adapter", "merged": "merged model", "gguf": "GGUF model",
               "gguf-adapter": "GGUF LoRA adapter"}  # fmt: skip
GGUF_BYTES_PER_PARAM = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 34 / 32,
                        # a K-quant: tunedeck's f16 file and llama.cpp's quantised copy
                        "q4_k_m": 2.0 + 0.62, "q5_k_m": 2.0 + 0.72, "q6_k": 2.0 + 0.82}  # fmt: skip
"""Upper bounds of the stored size (q4_0 keeps the embedding at q8_0)."""
ProgressFn = Callable[[str, float], None]


class ExportError(TunedeckError):
    """An export that cannot be written (nothing to export, no space, target exists)."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    out: Path
    kind: ExportKind
    files: list[str]
    """Paths of the written files, relative to `out`."""
    bytes: int
    notes: tuple[str, ...] = ()
    """Lines for the summary: what a GGUF read back as, the `ollama create` hint, and the
    command that serves the export (vLLM, llama-server)."""

    @property
    def merged(self) -> bool:
        """A full model with the adapter merged in (safetensors)."""
        return self.kind == "merged"

    @property
    def title(self) -> str:
        """What was exported, in words ("GGUF model")."""
        return KIND_TITLES[self.kind]

    def file_sizes(self) -> list[tuple[str, int]]:
        """Each written file with its size in bytes (read from disk now)."""
        return [(name, (self.out / name).stat().st_size) for name in self.files]


def export_run(
    run_dir: Path,
    out: Path,
    kind: ExportKind = "adapter",
    progress: ProgressFn | None = None,
    quant: Quant = DEFAULT_QUANT,
) -> ExportResult:
    """Write the run's kept adapter, merged model or GGUF, with card, bundle and report.

    Args:
        kind: what to write (see the module docstring).
        progress: called with each stage and the fraction of the export done.
        quant: storage type of a `gguf` export (f16, q8_0, q4_0 by tunedeck; q4_k_m,
            q5_k_m, q6_k by llama.cpp's quantizer, the `tunedeck[gguf]` extra).

    Raises:
        ExportError: no adapter yet, `out` exists, or too little disk space.
        UnsupportedModelError: a GGUF export of an architecture it does not support
            (refused before any work).
        QuantizerError: a K-quant without llama.cpp's quantizer (refused before any
            work), or llama.cpp refused the file.
    """
    say = progress or (lambda _stage, _fraction: None)
    adapter = run_dir / ADAPTER_DIR
    if not (adapter / "adapter_config.json").is_file():
        raise ExportError(
            f"run {run_dir.name} has no adapter yet",
            hint="an adapter is saved at the first validation; wait for one or resume the run",
        )
    out = out.expanduser().resolve()
    if out.exists():
        raise ExportError(f"{out} already exists", hint="choose a new directory for the export")
    cfg = load_config(run_dir / CONFIG_FILE)
    if kind in ("gguf", "gguf-adapter"):
        from engine.export.gguf.run import check_gguf_export

        check_gguf_export(cfg, quant if kind == "gguf" else None)
    if kind in ("merged", "gguf"):
        _check_space(cfg, out.parent, kind, quant)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        notes = _write_weights(run_dir, cfg, tmp, kind, quant, say)
        say("writing the model card, report and reproducibility bundle", 0.95)
        _write_bundle(run_dir, cfg, tmp / BUNDLE_DIR)
        (tmp / "README.md").write_text(model_card(run_dir, cfg, kind, quant))
        (tmp / "REPORT.md").write_text(render_report(run_dir))
        fsync_tree(tmp)
        os.replace(tmp, out)  # the export appears whole, or not at all
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    notes += serve_commands(cfg, kind, out, files, run_dir.name)
    return ExportResult(out, kind, files, size, tuple(notes))


def _write_weights(
    run_dir: Path, cfg: TrainConfig, tmp: Path, kind: ExportKind, quant: Quant, say: ProgressFn
) -> list[str]:
    """The export's weights into `tmp`; notes for the summary."""
    if kind == "merged":
        from engine.export.merge import merge_adapter

        say("merging the adapter into the base model (16/32-bit, not 4-bit)", 0.0)
        merge_adapter(cfg, run_dir / ADAPTER_DIR, tmp)
        return []
    if kind == "gguf":
        from engine.export.gguf.run import write_gguf_model

        return write_gguf_model(run_dir, cfg, tmp, quant, say)
    if kind == "gguf-adapter":
        from engine.export.gguf.run import write_gguf_adapter

        return write_gguf_adapter(run_dir, cfg, tmp, say)
    say("copying the adapter", 0.0)
    for item in (run_dir / ADAPTER_DIR).iterdir():
        shutil.copy2(item, tmp / item.name)
    return []


# ---------------------------------------------------------------------------
# Disk space
# ---------------------------------------------------------------------------


def _check_space(cfg: TrainConfig, parent: Path, kind: ExportKind, quant: Quant) -> None:
    from engine.config.estimate import read_model_config
    from engine.model.resolve import resolve_model
    from engine.model.shapes import model_shape

    shape = model_shape(read_model_config(resolve_model(cfg.model)))
    per_param = MERGED_BYTES_PER_PARAM if kind == "merged" else GGUF_BYTES_PER_PARAM[quant]
    need = int(shape.total_params * per_param * DISK_MARGIN)
    probe = parent
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise ExportError(
            f"not enough disk space for a {KIND_TITLES[kind]} export: about "
            f"{need / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free under {probe}",
            hint="free some space, choose another --out, or export the adapter alone "
            "(a few MB) without --merged",
        )


# ---------------------------------------------------------------------------
# Bundle and card
# ---------------------------------------------------------------------------


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide a run's numbers."""
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _write_bundle(run_dir: Path, cfg: TrainConfig, bundle: Path) -> None:
    bundle.mkdir()
    shutil.copy2(run_dir / CONFIG_FILE, bundle / CONFIG_FILE)
    manifest = run_dir / DATA_DIR / MANIFEST_FILE
    if manifest.is_file():
        shutil.copy2(manifest, bundle / MANIFEST_FILE)
    if (run_dir / EVENTS_FILE).is_file():
        shutil.copy2(run_dir / EVENTS_FILE, bundle / EVENTS_FILE)
    (bundle / "versions.json").write_text(json.dumps(package_versions(), indent=2) + "\n")
    hub = _data_source(run_dir).get("hub")
    data = (
        f"With the hub dataset `{hub.get('repo_id')}` at commit `{hub.get('commit')}` (the id\n"
        "in `config.toml` names that commit; from the Hugging Face cache, else the hub)"
        if isinstance(hub, dict)
        else "With the same data file at the path recorded in `config.toml` (its sha256 is in\n"
        "`manifest.json`)"
    )
    (bundle / "RERUN.md").write_text(
        "# Repeat this run\n\n"
        f"{data} and the package versions in `versions.json`:\n\n"
        "```sh\ntunedeck train tunedeck/config.toml --follow\n```\n\n"
        "The split is recomputed from the source with the recorded seed, so train and\n"
        "validation sides are the same; on CPU the losses repeat exactly.\n"
    )


def _data_source(run_dir: Path) -> dict[str, Any]:
    """The manifest's `source` (where the training examples came from); {} if unreadable."""
    try:
        manifest = json.loads((run_dir / DATA_DIR / MANIFEST_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    source = manifest.get("source") if isinstance(manifest, dict) else None
    return source if isinstance(source, dict) else {}


def _data_rows(run_dir: Path) -> str:
    """The card's training-data rows: the file's sha256, or the hub dataset and commit."""
    source = _data_source(run_dir)
    hub = source.get("hub")
    if not isinstance(hub, dict):
        return f"| training data sha256 | `{source.get('sha256', 'unknown')}` |\n"
    config = f", config {hub.get('config')}" if hub.get("config") else ""
    limit = f", first {source['limit']} rows" if source.get("limit") else ""
    return (
        f"| training data | hub dataset `{hub.get('repo_id')}` (split {hub.get('split')}"
        f"{config}{limit}) |\n"
        f"| dataset commit | `{hub.get('commit')}` |\n"
    )


def _adapter_events(run_dir: Path) -> tuple[dict[str, Any], int | None]:
    """The last `best` event, and the step of the kept adapter: the last `kept` event's,
    or for runs from before keep_adapter (they wrote only `best`) the best one's."""
    best: dict[str, Any] = {}
    kept: int | None = None
    for event in iter_all_events(run_dir):
        if event["type"] == "best":
            best = event
        elif event["type"] == "kept":
            kept = event.get("step")
    return best, kept if kept is not None else best.get("step")


def _kept_text(step: int | None, cfg: TrainConfig) -> str:
    """Which adapter the export holds: its step, and the rule that kept it."""
    rule = "the last one" if cfg.keep_adapter == "last" else "lowest validation loss"
    return f"step {step} ({rule})" if step is not None else rule


def model_card(
    run_dir: Path, cfg: TrainConfig, kind: ExportKind = "adapter", quant: Quant = DEFAULT_QUANT
) -> str:
    """A README for the exported directory: what it is, how it was made, how to use it."""
    best, kept = _adapter_events(run_dir)
    merged = kind == "merged"
    titles = {"adapter": "LoRA adapter (PEFT)", "merged": "merged model",
              "gguf": f"GGUF model ({quant})", "gguf-adapter": "GGUF LoRA adapter"}  # fmt: skip
    title = titles[kind]
    load = (
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "# stored in 16 bits; on a CPU add dtype=torch.float32 (16-bit math is slow there)\n"
        'model = AutoModelForCausalLM.from_pretrained("PATH")\n'
        'tokenizer = AutoTokenizer.from_pretrained("PATH")'
        if merged
        else "from peft import PeftModel\n"
        "from transformers import AutoModelForCausalLM\n"
        f'base = AutoModelForCausalLM.from_pretrained("{cfg.model}")\n'
        'model = PeftModel.from_pretrained(base, "PATH")'
    )
    val = f"{best['val_loss']:.4f} at step {best['step']}" if best else "not measured"
    modules = ", ".join(cfg.lora.target_modules)
    return (
        f"# {run_dir.name}: {title}\n\n"
        f"Fine-tuned with tunedeck from `{cfg.model}` using {cfg.method.upper()} "
        f"(r={cfg.lora.r}, alpha={cfg.lora.alpha}, modules={modules}).\n\n"
        f"| | |\n|---|---|\n"
        f"| base model | `{cfg.model}` |\n"
        f"| method | {cfg.method} |\n"
        f"{_data_rows(run_dir)}"
        f"| epochs / max steps | {cfg.epochs} / {cfg.max_steps or '-'} |\n"
        f"| learning rate | {cfg.learning_rate} |\n"
        f"| best validation loss | {val} |\n"
        f"| adapter | {_kept_text(kept, cfg)} |\n"
        f"| exported | {time.strftime('%Y-%m-%d %H:%M')} |\n\n"
        f"{_usage(run_dir, cfg, kind, quant, load)}"
        "The full config is in `tunedeck/config.toml`, the metrics and evaluation in\n"
        "`REPORT.md`, and the command to repeat the run in `tunedeck/RERUN.md`.\n"
    )


def _usage(run_dir: Path, cfg: TrainConfig, kind: ExportKind, quant: Quant, load: str) -> str:
    if kind in ("gguf", "gguf-adapter"):
        from engine.export.gguf.run import gguf_usage

        return gguf_usage(run_dir.name, cfg, kind == "gguf-adapter", quant)
    return f"## Load it\n\n```python\n{load}\n```\n\n"
