"""The training data as the Trainer reads it: tokenized chat examples, padded batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.core.layout import DATA_DIR
from engine.model.batching import right_padded
from engine.model.tokenization import tokenize_conversation


class ChatDataset:
    """Tokenised conversations (a plain list: a few thousand examples fit anywhere)."""

    def __init__(self, examples: list[Any], tokenizer: Any, max_seq_len: int) -> None:
        self.items: list[dict[str, list[int]]] = []
        self.dropped = 0  # examples whose answer lies entirely past max_seq_len
        for example in examples:
            tokens = tokenize_conversation(tokenizer, example.messages, max_seq_len)
            if tokens.trained_tokens == 0:
                self.dropped += 1
                continue
            self.items.append({"input_ids": tokens.input_ids, "labels": tokens.labels})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.items[index]


class PaddingCollator:
    """Right-pads a batch to its longest member (evaluation batches)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        rows = [(item["input_ids"], item["labels"]) for item in batch]
        ids, labels, mask = right_padded(rows, self.pad_id)
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def load_split(run_dir: Path, name: str) -> list[Any]:
    """The run's own copy of a split (written by engine.runs.store when the run was created)."""
    from engine.data.formats import load_examples

    path = run_dir / DATA_DIR / f"{name}.jsonl"
    if name == "val" and path.stat().st_size == 0:
        return []  # a run without validation set (the user chose it, loudly warned)
    return load_examples(path).examples
