"""The TUI's end of the playground's model process (engine.playground.server).

A `PlaygroundClient` starts `python -m engine.playground.server ...`, writes requests to its stdin
as JSON lines and reads its event lines from stdout. `events()` blocks between lines, so
a screen iterates it in a thread worker; `generate` and `cancel` only write a line to a
pipe the child reads all the time, so the UI thread may call them. The child's stderr
(library warnings) goes to a temporary file nobody has to drain; its tail explains a
child that died without an error line.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO, Any

from engine.core.errors import TunedeckError
from engine.model.generation import Sampling

STDERR_TAIL = 400
"""Characters of the child's stderr quoted when it died without saying why."""


class PlaygroundClient:
    """One playground process: requests in, events out."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self._closed = False

    def start(self) -> None:
        """Start the process; the model loads in it while `events()` reports progress."""
        # Open as long as the process lives; close() closes it.
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )

    def events(self) -> Iterator[dict[str, Any]]:
        """The child's events as they come (blocking); ends with the process.

        A child that ends with a non-zero code and was not closed by us ends the stream
        with `{"type": "exited", "code", "message"}` (its stderr's last lines).
        """
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # the child keeps stdout for events; nothing else is expected
            if isinstance(event, dict):
                yield event
        code = self.process.wait()
        if code != 0 and not self._closed:
            yield {"type": "exited", "code": code, "message": self._stderr_tail()}

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-STDERR_TAIL:].strip()

    def send(self, request: dict[str, Any]) -> None:
        """Write one request line.

        Raises:
            TunedeckError: the process has ended.
        """
        if self.process is None or self.process.stdin is None or self.process.poll() is not None:
            raise TunedeckError(
                "the playground's model process is not running", hint="reload it with ctrl+r"
            )
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise TunedeckError(
                "the playground's model process is not running", hint="reload it with ctrl+r"
            ) from exc

    def generate(
        self,
        id_: Any,
        side: str,
        system: str,
        messages: Sequence[dict[str, str]],
        settings: Sampling,
    ) -> None:
        """Ask one side for the answer to `messages` (the last one the user's)."""
        self.send(
            {
                "type": "generate",
                "id": id_,
                "side": side,
                "system": system,
                "messages": list(messages),
                "settings": {
                    "max_new_tokens": settings.max_new_tokens,
                    "temperature": settings.temperature,
                    "top_p": settings.top_p,
                    "seed": settings.seed,
                },
            }
        )

    def cancel(self) -> None:
        """Stop the answer being written and drop the ones waiting."""
        self.send({"type": "cancel"})

    def close(self) -> None:
        """End the process (the model's memory goes with it)."""
        self._closed = True
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            if self.process.stdin is not None:
                with contextlib.suppress(OSError):
                    self.process.stdin.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
