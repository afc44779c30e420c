"""A run's own copy of its data: the split written into `<run>/data/` when it is created.

The worker trains from these files only, so editing or deleting the source afterwards
never changes a run, and the manifest (source sha256, line numbers per side, seed) says
exactly what it trained on.
"""

from __future__ import annotations

from pathlib import Path

from engine.config.build import TrainConfig
from engine.data.split import SplitResult, split_dataset


def prepare_run_data(cfg: TrainConfig, data_dir: Path) -> SplitResult:
    """Write train.jsonl, val.jsonl and manifest.json for a run.

    - `data.source`: split it (validation fraction and seed from the config);
    - `data.train` + `data.val`: take both as given, with a leakage check between them;
    - `data.train` alone: train on all of it, with no validation set (loudly warned).
    """
    data = cfg.validate_for_run().data
    if data.source:
        return split_dataset(
            data.source,
            data_dir,
            val_fraction=data.val_fraction,
            seed=data.split_seed,
            fmt=data.format,
        )
    assert data.train is not None  # validate_for_run guarantees source or train
    if data.val:
        return split_dataset(data.train, data_dir, fmt=data.format, val_file=data.val)
    return split_dataset(data.train, data_dir, val_fraction=0.0, fmt=data.format, allow_no_val=True)
