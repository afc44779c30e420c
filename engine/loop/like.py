"""The next run's configuration: the previous run's, on new data (`tunedeck train --like`).

The run's frozen config.toml as it is (the recipe's values included: the comparison of the
two runs then tells what the data changed), with the new data as `data.source`. When the
new data is a corrected copy of the run's own file (`tunedeck data fix`), the split is kept
(`data.split_like`): every example stays on the side it was on.
"""

from __future__ import annotations

from pathlib import Path

from engine.config.build import TrainConfig, load_config, with_overrides
from engine.core.layout import CONFIG_FILE
from engine.loop.fix import is_fixed_copy


def like_config(run_dir: Path, data: str | Path) -> tuple[TrainConfig, bool]:
    """The run's config on `data`, and whether it keeps the run's split."""
    keep = is_fixed_copy(run_dir, data)
    changes = {
        "data.source": str(Path(data).expanduser().resolve()),
        "data.train": None,
        "data.val": None,
        "data.split_like": run_dir.name if keep else None,
    }
    return with_overrides(load_config(run_dir / CONFIG_FILE), **changes), keep
