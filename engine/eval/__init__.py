"""Evaluation: base zero-shot, base few-shot and fine-tuned on held-out examples.

- `launch`: one evaluation per run, in this process or detached (`python -m engine.eval`);
- `events`: its `eval_*` events read back: a batch's news, whether an end was a stop, and
  the rows a stopped evaluation kept;
- `plan`: the held-out data, the systems and the weights each needs;
- `runner`: the `Evaluation` itself (generate, losses, probes, judge, summary), resumable;
- `options`, `sets`, `store`: its settings, its held-out set (split or test file), its files;
- `generate`: batched greedy generation; `metrics`, `stats`, `summary`: scores, intervals,
  the verdict; `memorisation`, `probes`: overfitting signs;
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
    "probes",
    "review",
    "review_marks",
    "runner",
    "sets",
    "stats",
    "store",
    "summary",
    "judge",
]
