"""Training: the worker process that runs one run to its end (`python -m engine.train`).

- `worker`: the Trainer, the worker's life (locks, resume, out-of-memory retry, failure);
- `model`: the base with LoRA on top, placed on this process's devices (DDP / FSDP);
- `dataset`: tokenized examples and batches as the Trainer reads them;
- `callback`: progress, validation, checkpoints and early stopping -> events.jsonl;
- `packed_attention`: per-example attention over padding-free rows.

Stands on engine.config, engine.data, engine.model and engine.core; never imports
engine.eval or engine.runs.
"""

__all__ = ["callback", "dataset", "model", "packed_attention", "worker"]
