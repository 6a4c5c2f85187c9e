"""Start the daemon early, while Textual is still importing.

When no daemon answers, the TUI has to start one, and both the daemon's start
and the TUI's own imports take most of a second of CPU each.  Starting the
daemon in a thread before ``textual`` is imported lets the two overlap (the
daemon is another process, so it uses the other core).  The thread runs the
client's own :func:`octostored.client.start_daemon` (``octostored --detach``,
which returns once the daemon answers); the daemon link waits for it before it
connects.  Only the standard library and the light client module are imported.
"""

from __future__ import annotations

import socket
import threading

from octostored.client import OctostoreClientError, start_daemon
from octostored.paths import socket_path


class DaemonStarter:
    """A daemon being started in the background for ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.error: OctostoreClientError | None = None
        self._thread = threading.Thread(target=self._start, name="octostored-start", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        try:
            start_daemon(self.path)
        except OctostoreClientError as exc:
            self.error = exc

    def wait(self, timeout: float | None = None) -> None:
        """Block until the start finished (successfully or not)."""
        self._thread.join(timeout)


def answers(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def start_if_absent(path: str | None) -> DaemonStarter | None:
    """Start a daemon for ``path`` (default socket if None) unless one answers already."""
    sock = path or socket_path()
    if answers(sock):
        return None
    return DaemonStarter(sock)
