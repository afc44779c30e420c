"""The loop after an evaluation: review turns into better data for the next run.

- `corrections`: is a corrected answer fit to train on (JSON when the training answers
  are, keys the training answers use);
- `grow`: `tunedeck data add`: the run's frozen training data plus the accepted and
  corrected answers of a reviewed set, with their provenance, never a held-out example;
- `fix`: `tunedeck data fix`: a corrected copy of a source file where the review found its
  reference wrong, nothing else changed;
- `like`: the next run's configuration (`tunedeck train --like`): the run's own, new data;
- `review`: the review as actions on numbered examples (`tunedeck review`).

Stands on engine.eval (review state, eval sets) and engine.data; beside engine.runs.
"""

__all__ = ["corrections", "fix", "grow", "like", "review"]
