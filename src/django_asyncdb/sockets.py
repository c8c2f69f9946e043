"""Is there something to read on an idle connection's socket right now?

For a connection nobody is using, anything readable is the server's goodbye (a FATAL
message from a terminated backend, an idle timeout, CLIENT KILL, the end of the stream)
that the event loop may not have read yet. A pool asks before lending the connection, so a
dead one is replaced instead of failing the next statement; one ``poll(0)``, no round trip.
"""

from __future__ import annotations

import select


class InputWatch:
    """``poll(0)`` on one file descriptor, the poller made once."""

    __slots__ = ("_poller", "fd")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN)

    def pending(self) -> bool:
        """True if the socket has something to read (or is closed at the other end)."""
        return bool(self._poller.poll(0))
