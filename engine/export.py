"""Export a run: the adapter (or a merged model), a model card, a reproducibility bundle
and a run report, written so that an interrupted export never looks complete.

Layout of `--out DIR`:
```
DIR/                 adapter_config.json + adapter_model.safetensors (PEFT), or with
                     --merged a full model (config.json, *.safetensors, tokenizer, chat
                     template); README.md (model card) and REPORT.md (run report) either way
DIR/tunedeck/        config.toml, manifest.json (split, source sha256), versions.json,
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
from typing import Any

from engine.config import TrainConfig, load_config
from engine.errors import TunedeckError
from engine.events import iter_all_events
from engine.run_report import render_report

BUNDLE_DIR = "tunedeck"
VERSIONED_PACKAGES = (
    "tunedeck", "torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets",
    "safetensors", "tokenizers",
)  # fmt: skip
DISK_MARGIN = 1.2  # free space wanted over the estimated size of a merged export


class ExportError(TunedeckError):
    """An export that cannot be written (nothing to export, no space, target exists)."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    out: Path
    merged: bool
    files: list[str]
    """Paths of the written files, relative to `out`."""
    bytes: int

    def file_sizes(self) -> list[tuple[str, int]]:
        """Each written file with its size in bytes (read from disk now)."""
        return [(name, (self.out / name).stat().st_size) for name in self.files]


def export_run(
    run_dir: Path,
    out: Path,
    merged: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Write the run's best adapter (or merged model), card, bundle and report to `out`.

    Raises:
        ExportError: no adapter yet, `out` exists, or too little disk space.
    """
    say = progress or (lambda _message: None)
    adapter = run_dir / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise ExportError(
            f"run {run_dir.name} has no adapter yet",
            hint="an adapter is saved at the first validation; wait for one or resume the run",
        )
    out = out.expanduser().resolve()
    if out.exists():
        raise ExportError(f"{out} already exists", hint="choose a new directory for the export")
    cfg = load_config(run_dir / "config.toml")
    if merged:
        _check_space_for_merge(cfg, out.parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        if merged:
            say("merging the adapter into the base model (16/32-bit, not 4-bit)")
            merge_adapter(cfg, adapter, tmp)
        else:
            say("copying the adapter")
            for item in adapter.iterdir():
                shutil.copy2(item, tmp / item.name)
        say("writing the model card, report and reproducibility bundle")
        _write_bundle(run_dir, cfg, tmp / BUNDLE_DIR)
        (tmp / "README.md").write_text(model_card(run_dir, cfg, merged))
        (tmp / "REPORT.md").write_text(render_report(run_dir))
        _fsync_tree(tmp)
        os.replace(tmp, out)  # the export appears whole, or not at all
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return ExportResult(out, merged, files, size)


# ---------------------------------------------------------------------------
# Merging
# ---------------------------------------------------------------------------


def merge_adapter(cfg: TrainConfig, adapter: Path, out: Path) -> None:
    """Reload the base unquantised, apply the adapter, merge it in, save model + tokenizer.

    QLoRA trains against an NF4 base; merging into 4-bit weights would round the update
    away, so the base is reloaded in fp32 (CPU) or bf16 (CUDA) first.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.models import resolve_model

    base_path = resolve_model(cfg.model)
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
    model = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(base_path).save_pretrained(out)


def _check_space_for_merge(cfg: TrainConfig, parent: Path) -> None:
    from engine.estimate import read_model_config
    from engine.model_shapes import model_shape
    from engine.models import resolve_model

    shape = model_shape(read_model_config(resolve_model(cfg.model)))
    need = int(shape.total_params * 4 * DISK_MARGIN)  # fp32 on CPU: the larger case
    probe = parent
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise ExportError(
            f"not enough disk space for a merged export: about {need / 1e9:.1f} GB needed, "
            f"{free / 1e9:.1f} GB free under {probe}",
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
    shutil.copy2(run_dir / "config.toml", bundle / "config.toml")
    manifest = run_dir / "data" / "manifest.json"
    if manifest.is_file():
        shutil.copy2(manifest, bundle / "manifest.json")
    if (run_dir / "events.jsonl").is_file():
        shutil.copy2(run_dir / "events.jsonl", bundle / "events.jsonl")
    (bundle / "versions.json").write_text(json.dumps(package_versions(), indent=2) + "\n")
    (bundle / "RERUN.md").write_text(
        "# Repeat this run\n\n"
        "With the same data file at the path recorded in `config.toml` (its sha256 is in\n"
        "`manifest.json`) and the package versions in `versions.json`:\n\n"
        "```sh\ntunedeck train tunedeck/config.toml --follow\n```\n\n"
        "The split is recomputed from the source with the recorded seed, so train and\n"
        "validation sides are the same; on CPU the losses repeat exactly.\n"
    )


def _source_sha(run_dir: Path) -> str:
    try:
        manifest = json.loads((run_dir / "data" / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return "unknown"
    source = manifest.get("source", {})
    return str(source.get("sha256", "unknown")) if isinstance(source, dict) else "unknown"


def _best(run_dir: Path) -> dict[str, Any]:
    best: dict[str, Any] = {}
    for event in iter_all_events(run_dir):
        if event["type"] == "best":
            best = event
    return best


def model_card(run_dir: Path, cfg: TrainConfig, merged: bool) -> str:
    """A README for the exported directory: what it is, how it was made, how to load it."""
    best = _best(run_dir)
    kind = "merged model" if merged else "LoRA adapter (PEFT)"
    load = (
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
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
        f"# {run_dir.name}: {kind}\n\n"
        f"Fine-tuned with tunedeck from `{cfg.model}` using {cfg.method.upper()} "
        f"(r={cfg.lora.r}, alpha={cfg.lora.alpha}, modules={modules}).\n\n"
        f"| | |\n|---|---|\n"
        f"| base model | `{cfg.model}` |\n"
        f"| method | {cfg.method} |\n"
        f"| training data sha256 | `{_source_sha(run_dir)}` |\n"
        f"| epochs / max steps | {cfg.epochs} / {cfg.max_steps or '-'} |\n"
        f"| learning rate | {cfg.learning_rate} |\n"
        f"| best validation loss | {val} |\n"
        f"| exported | {time.strftime('%Y-%m-%d %H:%M')} |\n\n"
        f"## Load it\n\n```python\n{load}\n```\n\n"
        "The full config is in `tunedeck/config.toml`, the metrics and evaluation in\n"
        "`REPORT.md`, and the command to repeat the run in `tunedeck/RERUN.md`.\n"
    )


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
