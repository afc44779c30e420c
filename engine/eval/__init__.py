"""Evaluation: base zero-shot, base few-shot and fine-tuned on held-out examples.

- `launch`: one evaluation per run, in this process or detached (`python -m engine.eval`);
- `events`: its `eval_*` events read back: a batch's news, whether an end was a stop, and
  the rows a stopped evaluation kept;
- `plan`: the held-out data, the systems and the weights each needs;
- `runner`: the `Evaluation` itself (generate, losses, probes, judge, summary), resumable;
- `options`, `sets`, `store`: its settings, its held-out set (split, test file or prompt
  pool), its files; `primary`: the run's primary metric, decided once and stored;
- `generate`: batched greedy generation; `metrics`, `stats`, `summary`: scores, intervals,
  the verdict; `pool_summary`: a pool's (no references: review decides); `rescore`: a
  summary under another run's metric; `memorisation`, `probes`: overfitting signs;
- `baseline`: the base-model evaluation before training;
- `review`, `review_marks`, `answer_digest`: the side-by-side table and human marks;
- `judge/`: an optional LLM judge (`config`, `clients`, `judging`).

Stands on engine.config, engine.data, engine.model and engine.core; never imports
engine.train or engine.runs.
"""

__all__ = [
    "answer_digest",
    "baseline",
    "events",
    "generate",
    "launch",
    "memorisation",
    "metrics",
    "options",
    "plan",
    "pool_summary",
    "primary",
    "probes",
    "review",
    "review_marks",
    "rescore",
    "runner",
    "sets",
    "stats",
    "store",
    "summary",
    "judge",
]
