"""A run's own copy of its data: the split written into `<run>/data/` when it is created.

The worker trains from these files only, so editing or deleting the source afterwards
never changes a run, and the manifest (source sha256, line numbers per side, seed) says
exactly what it trained on.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from engine.config.build import TrainConfig
from engine.core.errors import TunedeckError
from engine.core.layout import DATA_DIR, MANIFEST_FILE
from engine.core.paths import runs_dir
from engine.data.formats import load_examples
from engine.data.split import SplitResult, split_dataset


def kept_val_lines(
    run_id: str, source: str, limit: int | None = None, columns: str | None = None
) -> list[int]:
    """The validation lines of run `run_id`'s split, for a file of the same records.

    Raises:
        TunedeckError: no such run, it split no single file, or `source` has another
            number of records (it is not a corrected copy of that run's file).
    """
    manifest = runs_dir() / run_id / DATA_DIR / MANIFEST_FILE
    try:
        info = json.loads(manifest.read_text(encoding="utf-8"))
        val_lines, count = list(info["val_lines"]), int(info["source"]["examples"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TunedeckError(
            f"data.split_like: run {run_id} has no split of one file to keep",
            hint="name a run trained on data.source (tunedeck runs lists them)",
        ) from exc
    found = len(load_examples(source, limit=limit, columns=columns).examples)
    if found != count:
        raise TunedeckError(
            f"data.split_like: {source} has {found} examples, run {run_id}'s file had {count}",
            hint="keep a split only for a corrected copy of the same file (tunedeck data fix)",
        )
    return val_lines


def prepare_run_data(cfg: TrainConfig, data_dir: Path) -> SplitResult:
    """Write train.jsonl, val.jsonl and manifest.json for a run.

    - `data.source`: split it (validation fraction and seed from the config);
    - `data.train` + `data.val`: take both as given, with a leakage check between them;
    - `data.train` alone: train on all of it, with no validation set (loudly warned).
    """
    data = cfg.validate_for_run().data
    # Every side is read alike: the same format, row limit and column mapping.
    split = partial(split_dataset, fmt=data.format, limit=data.limit, columns=data.columns)
    if data.source and data.split_like:
        kept = kept_val_lines(data.split_like, data.source, data.limit, data.columns)
        return split(data.source, data_dir, seed=data.split_seed, keep_val_lines=kept)
    if data.source:
        return split(data.source, data_dir, val_fraction=data.val_fraction, seed=data.split_seed)
    assert data.train is not None  # validate_for_run guarantees source or train
    if data.val:
        return split(data.train, data_dir, val_file=data.val)
    return split(data.train, data_dir, val_fraction=0.0, allow_no_val=True)
