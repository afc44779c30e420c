"""Padding-free batches and a loss computed only where it counts.

Two levers on the same mathematics (the loss equals the model's own token-mean
cross-entropy over assistant tokens; tests pin it):

1. Padding-free micro-batches: a micro-batch's examples are concatenated into one row
   with `position_ids` restarting at 0 for each example and no attention mask;
   transformers turns restarting positions into a block-diagonal causal mask, so examples
   never attend to each other, and no compute is spent on padding.
2. Logits only at trained positions: `logits_to_keep` (a boolean mask) makes the LM head
   project only the positions whose next token is an assistant token. With a 49k-token
   vocabulary the head is a large share of the compute, and most positions are prompt.

With engine.train.packed_attention switched on, each example of the row also gets its own
attention call instead of a block-diagonal mask over the whole row.
"""

from __future__ import annotations

from typing import Any

from engine.model.tokenization import IGNORE_INDEX


class PackedDataset:
    """Examples packed into sequences of at most `max_len` tokens (`packing = true`).

    Each item holds whole examples back to back and their `lengths`; the collator keeps
    them apart (restarting positions, attention within each example), so packing changes
    how many examples a micro-batch holds (as many as fill max_len tokens, per row), never
    what an example sees. The order is shuffled with `seed` before filling, so sequences
    mix lengths and labels; the Trainer then shuffles the sequences every epoch.
    """

    def __init__(self, examples: Any, max_len: int, seed: int) -> None:
        import random

        order = list(range(len(examples)))
        random.Random(seed).shuffle(order)
        self.items: list[dict[str, list[int]]] = []
        current: dict[str, list[int]] = {"input_ids": [], "labels": [], "lengths": []}
        for index in order:
            item = examples[index]
            n = len(item["input_ids"])
            if current["lengths"] and len(current["input_ids"]) + n > max_len:
                self.items.append(current)
                current = {"input_ids": [], "labels": [], "lengths": []}
            current["input_ids"] += item["input_ids"]
            current["labels"] += item["labels"]
            current["lengths"].append(n)
        if current["lengths"]:
            self.items.append(current)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.items[index]


class PackedCollator:
    """Concatenates a micro-batch into one padding-free row; counts the tokens it trains.

    Items are single examples, or packed sequences of several (PackedDataset: their
    `lengths` say where each example ends)."""

    def __init__(self, counter: Any = None) -> None:
        self.counter = counter

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        bounds = [0]
        for item in batch:
            ids += item["input_ids"]
            start = 0
            for n in item.get("lengths") or [len(item["input_ids"])]:
                # The first token of each example is never a target (it follows another
                # example's last token): the templates start with a prompt, but make sure.
                labels += [IGNORE_INDEX] + item["labels"][start + 1 : start + n]
                positions += range(n)
                bounds.append(bounds[-1] + n)
                start += n
        if self.counter is not None:
            self.counter.trained += sum(label != IGNORE_INDEX for label in labels)
            self.counter.total += len(ids)
        return {
            "input_ids": torch.tensor([ids]),
            "labels": torch.tensor([labels]),
            "position_ids": torch.tensor([positions]),
            # Where each example starts (engine.train.packed_attention attends within them):
            # a tensor the Trainer moves to the GPU (varlen kernels read it there), and
            # the same bounds as ints, which stay on the CPU (per-example calls read them
            # without waiting on the GPU).
            "cu_seq_lens": torch.tensor(bounds, dtype=torch.int32),
            "seq_bounds": tuple(bounds),
            "max_length": max(b - a for a, b in zip(bounds[:-1], bounds[1:], strict=True)),
        }


def trained_positions_loss(
    model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
) -> tuple[Any, Any]:
    """Summed cross-entropy at trained positions over `num_items_in_batch` (or their count).

    Returns:
        (loss, outputs): the outputs hold logits for the kept positions only.
    """
    import torch

    labels = inputs["labels"]
    targets = labels[:, 1:]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = targets != IGNORE_INDEX
    bounds = inputs.get("cu_seq_lens")
    extra = {} if bounds is None else {"cu_seq_lens_q": bounds}  # engine.train.packed_attention
    if inputs.get("seq_bounds") is not None:
        extra.update(seq_bounds=inputs["seq_bounds"], max_length_q=inputs["max_length"])
    outputs = model(
        input_ids=inputs["input_ids"],
        attention_mask=inputs.get("attention_mask"),
        position_ids=inputs.get("position_ids"),
        logits_to_keep=keep,
        use_cache=False,  # with a cache, transformers does not look for packed sequences
        **extra,
    )
    logits = outputs.logits.reshape(-1, outputs.logits.shape[-1])
    wanted = targets[targets != IGNORE_INDEX]
    loss = summed_cross_entropy(logits, wanted)
    denominator = num_items_in_batch if num_items_in_batch is not None else wanted.numel()
    return loss / max(denominator, 1) if isinstance(
        denominator, int
    ) else loss / denominator, outputs


CHUNK_LOGITS = 1 << 25
"""Logits upcast to fp32 at a time (128 MB): a chunk of kept positions x vocabulary."""


def summed_cross_entropy(logits: Any, targets: Any, chunk_logits: int = CHUNK_LOGITS) -> Any:
    """Summed fp32 cross-entropy of (N, vocab) logits, a chunk of positions at a time.

    With a large vocabulary the kept logits dominate memory: Llama-3's 128k entries are
    ~16 bytes per logit when upcast at once (bf16 logits, fp32 copy, softmax, gradient),
    17 GB for 8k trained tokens. In chunks under non-reentrant checkpointing only the
    bf16 logits and their gradient stay; each chunk's fp32 softmax is recomputed in the
    backward pass. Small batches (every test) take the single call: same value either way.
    """
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    rows = max(1, chunk_logits // max(1, logits.shape[-1]))
    if logits.shape[0] <= rows:
        return F.cross_entropy(logits.float(), targets, reduction="sum")
    total = None
    for start in range(0, logits.shape[0], rows):
        part = checkpoint(
            _chunk_loss, logits[start : start + rows], targets[start : start + rows],
            use_reentrant=False,
        )  # fmt: skip
        total = part if total is None else total + part
    return total


def _chunk_loss(logits: Any, targets: Any) -> Any:
    import torch.nn.functional as F

    return F.cross_entropy(logits.float(), targets, reduction="sum")


def trained_loss_sum(
    model: Any, input_ids: Any, attention_mask: Any, labels: Any
) -> tuple[float, int]:
    """(summed loss, count) over the positions whose next token is a label (evaluation).

    The model projects only those positions (`logits_to_keep` as a mask), as training
    does: batch x length x vocabulary logits would be ~10 GB at 4 x 2048 on Llama-3.
    """
    import torch

    targets = labels[:, 1:]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = targets != IGNORE_INDEX
    wanted = targets[targets != IGNORE_INDEX]
    if wanted.numel() == 0:
        return 0.0, 0
    outputs = model(
        input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep, use_cache=False
    )
    logits = outputs.logits.reshape(-1, outputs.logits.shape[-1])
    return float(summed_cross_entropy(logits, wanted)), int(wanted.numel())
