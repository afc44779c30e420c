"""The run store: create, start, find, list, control, compare and report runs.

- `store`: create a run directory and start its detached worker; list, find, control;
- `data`: the run's own copy of its split;
- `admin`: delete, prune and tidy old runs;
- `compare`: runs side by side, on one primary metric; `outcome`: runs compared on one test
  file with intervals and a paired test; `report`, `text_chart`: a run's report with its
  loss chart.

Stands on engine.train and engine.eval (their process names and files), and below.
"""

__all__ = ["admin", "compare", "data", "outcome", "report", "store", "text_chart"]
