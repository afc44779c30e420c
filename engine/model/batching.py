"""Right padding of tokenised examples into one batch (training and validation alike).

torch is imported inside the function: importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.model.tokenization import IGNORE_INDEX


def right_padded(
    rows: Sequence[tuple[Sequence[int], Sequence[int]]], pad: int
) -> tuple[Any, Any, Any]:
    """(input_ids, labels, attention_mask) of `(input_ids, labels)` rows, padded on the right
    to the longest row: pad id in the inputs, IGNORE_INDEX in the labels, 0 in the mask."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (row_ids, row_labels) in enumerate(rows):
        n = len(row_ids)
        ids[row, :n] = torch.tensor(list(row_ids), dtype=torch.long)
        labels[row, :n] = torch.tensor(list(row_labels), dtype=torch.long)
        mask[row, :n] = 1
    return ids, labels, mask
