"""Datasets: read them, lint them, split them.

- `formats` (with `readers`, `rules`): the four record formats in JSONL / JSON / CSV /
  Parquet -> `Example`s, with a line number for every problem;
- `lint/`: findings with codes, lines and fixes (`linter.lint_file`), and `fix` (clean copy);
- `labels`: which key of a structured answer is a class label; `primary`: the task's
  primary metric, decided from the training answers;
- `pool`: prompt pools (inputs without answers) and their lint;
- `minhash`, `near_duplicates`: near-duplicate groups; `split_groups`: keeping them on one side;
- `split`, `split_advice`: train / validation split without leakage, and its advice;
- `token_lengths`: token-length surveys against max_seq_len.

Stands on engine.model (tokenizers) and engine.core.
"""

__all__ = [
    "formats",
    "labels",
    "minhash",
    "near_duplicates",
    "pool",
    "primary",
    "readers",
    "rules",
    "split",
    "split_advice",
    "split_groups",
    "token_lengths",
    "lint",
]
