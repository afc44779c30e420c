"""Trainer checkpoints that a crash can never leave half-written as "latest".

transformers' Trainer writes `checkpoints/checkpoint-<step>/` file by file. After it is
done we fsync every file, then write a marker and fsync the directory: a checkpoint
without the marker (a worker killed mid-save, a full disk) is never resumed from, and is
removed before the next save reuses its name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from engine.core.files import fsync_path, fsync_tree
from engine.core.layout import CHECKPOINT_MARKER

MARKER = CHECKPOINT_MARKER
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def mark_complete(checkpoint: Path, step: int) -> None:
    """Flush the checkpoint's files to disk, then write its completeness marker last."""
    fsync_tree(checkpoint)
    marker = checkpoint / MARKER
    tmp = checkpoint / f".{MARKER}.tmp"
    tmp.write_text(json.dumps({"step": step}) + "\n")
    fsync_path(tmp)
    os.replace(tmp, marker)
    fsync_path(checkpoint)


def step_of(path: Path | None) -> int:
    """The optimizer step a checkpoint directory was saved at; 0 for none (a fresh start)."""
    return (_step_of(path) or 0) if path is not None else 0


def _step_of(path: Path) -> int | None:
    match = _CHECKPOINT.match(path.name)
    return int(match.group(1)) if match else None


def safetensors_readable(path: Path) -> bool:
    """A cheap integrity check (no tensor is read): safetensors' own header parser accepts
    the file, which also checks that the tensors' offsets cover the data section exactly."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy"):
            return True
    except (OSError, SafetensorError, ValueError):
        return False


def is_valid(checkpoint: Path) -> bool:
    """Marked complete, and every safetensors file in it is whole."""
    if not (checkpoint / MARKER).is_file():
        return False
    return all(safetensors_readable(p) for p in checkpoint.rglob("*.safetensors"))


def checkpoints_by_step(root: Path) -> list[tuple[int, Path]]:
    """All checkpoint directories under `root`, oldest step first."""
    if not root.is_dir():
        return []
    found = [(_step_of(p), p) for p in root.iterdir() if p.is_dir()]
    return sorted((step, p) for step, p in found if step is not None)


def latest_valid(root: Path) -> Path | None:
    """The newest checkpoint that is complete and readable, if any."""
    for _step, path in reversed(checkpoints_by_step(root)):
        if is_valid(path):
            return path
    return None


def remove_incomplete(root: Path) -> list[Path]:
    """Delete checkpoints without a marker (half-written by a dead worker)."""
    removed = []
    for _step, path in checkpoints_by_step(root):
        if not (path / MARKER).is_file():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
