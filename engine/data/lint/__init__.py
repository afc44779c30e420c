"""Lint: every problem of a dataset with its line, a stable code and a hint.

- `linter`: `lint_file` -> `LintReport`;
- `collect`, `checks`: per-example features and the checks across examples;
- `findings`: the `Finding` type and its codes;
- `fix`: the clean copy (drops what lint says to drop).
"""

__all__ = ["checks", "collect", "findings", "fix", "linter"]
