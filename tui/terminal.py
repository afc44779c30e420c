"""Leave when the terminal goes away.

Closing the terminal (or losing the SSH session) hangs up the TUI's tty. The kernel sends
SIGHUP to the session leader only: started directly, that is the TUI, which exits; started
under another process (`make run`), the leader is that process, which waits for its
child, and the TUI would live on, its input thread reading end-of-file in a loop. So the
TUI watches its own terminal: once the tty reports a hangup (I/O errors on a terminal
request), it exits. Training and evaluation runs are separate processes and go on.
"""

from __future__ import annotations

import errno
import os
import termios
import threading
from collections.abc import Callable

POLL_S = 1.0
FORCE_AFTER_S = 5.0
"""Exit at once if the app has not closed itself this long after the hangup."""
HANGUP_EXIT_CODE = 129  # 128 + SIGHUP, as a shell reports a hung-up process


def hung_up(fd: int) -> bool:
    """True once the terminal on `fd` is hung up (a live or non-terminal fd: False)."""
    try:
        termios.tcgetattr(fd)
    except termios.error as exc:
        return exc.args[0] == errno.EIO
    except (OSError, ValueError):
        return False
    return False


def watch_terminal(
    fd: int,
    on_hangup: Callable[[], None],
    poll_s: float = POLL_S,
    force_after_s: float | None = FORCE_AFTER_S,
) -> threading.Event | None:
    """Call `on_hangup` (once) when the terminal on `fd` hangs up; None if `fd` is no tty.

    A daemon thread polls the terminal. With `force_after_s`, the process exits with code
    129 if it is still alive that long after the hangup. Set the returned event to stop
    watching.
    """
    if not os.isatty(fd):
        return None
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(poll_s):
            if hung_up(fd):
                on_hangup()
                if force_after_s is not None and not stop.wait(force_after_s):
                    os._exit(HANGUP_EXIT_CODE)
                return

    threading.Thread(target=watch, name="terminal-watch", daemon=True).start()
    return stop
