"""The ground floor: what every other part of the engine stands on.

- `errors`: TunedeckError (message + hint + the field it is about) and its kinds;
- `paths`: $TUNEDECK_HOME and the folders under it;
- `layout`: the name of every file and folder of a run directory;
- `events`: the run's events.jsonl and status.json (write, read, tail);
- `control`: locks, pids and the stop / pause requests a worker obeys;
- `checkpoints`: the run's saved checkpoints, valid or not;
- `files`: atomic writes and fsync of files and directory trees;
- `process`: starting a detached child process that outlives its parent.

Imports nothing from the rest of the engine.
"""

__all__ = ["checkpoints", "control", "errors", "events", "files", "layout", "paths", "process"]
