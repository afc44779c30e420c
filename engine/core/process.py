"""Starting the engine's detached processes: the training worker and evaluations.

Each runs in its own session, so closing the TUI, the terminal or the SSH connection does
not stop it; its output goes to a log file in the run directory, and everything else it
says goes through the run's files (engine.core.events).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def spawn_detached(
    command: Sequence[str], cwd: Path, log: Path, env: Mapping[str, str] | None = None
) -> int:
    """Start `command` in its own session with stdout and stderr appended to `log`.

    `env`: variables added to this process's environment. Returns the child's pid.
    """
    environment = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    with open(log, "ab") as handle:  # the child keeps its own descriptor
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # closing the TUI or the SSH session does not stop it
            close_fds=True,
        )
    return process.pid
