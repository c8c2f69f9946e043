"""A lean pool of autocommit connections per alias and event loop.

Measured against psycopg_pool with its defaults (a transaction per checkout and a
reset on return), a queue of autocommit connections handed out without any round
trip was twice as fast for short queries; so the pool does no round trip on checkout
or return unless ``CHECK`` asks for one. A connection that is broken, mid-transaction
or was interrupted (a task cancelled mid-query) is closed instead of returned.

Dead connections: an idle connection whose socket has something to read (a server
that restarted or terminated the backend sends its goodbye and closes) is dropped at
checkout without a round trip. A connection the server dropped while in use takes the
idle ones with it: after a restart or failover they are dead too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from .backends.base import Backend, Connection
from .errors import PoolClosed, PoolTimeout, translate

logger = logging.getLogger("django_asyncdb.pool")


class Pool:
    """Connections of one alias on one event loop."""

    def __init__(self, backend: Backend) -> None:
        settings = backend.settings
        self.backend = backend
        self.alias = settings.alias
        self.min_size = settings.min_size
        self.max_size = settings.max_size
        self.timeout = settings.timeout
        self.max_idle = settings.max_idle
        self.max_lifetime = settings.max_lifetime
        self._idle: deque[Connection] = deque()
        self._connections: set[Connection] = set()  # idle or in use
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._size = 0
        self._closed = False
        self._closing: set[asyncio.Task[None]] = set()
        self.check = settings.check
        self._opened: asyncio.Task[None] | None = None
        self.generation = 0  # of the settings it was made with

    def __repr__(self) -> str:
        return f"<Pool {self.alias!r} size={self._size} idle={len(self._idle)}>"

    @property
    def size(self) -> int:
        """Connections open or being opened."""
        return self._size

    @property
    def idle(self) -> int:
        """Connections waiting in the pool."""
        return len(self._idle)

    async def open(self) -> None:
        """Open the first connections (at least one, to learn the server's facts).

        The opening runs in a task of its own that every caller waits for: a caller
        cancelled meanwhile (an ASGI client gone during the first query) leaves it
        running for the others. If it fails, they all get the error and the next
        caller tries again.
        """
        opening = self._opened
        if opening is None:
            opening = self._opened = asyncio.get_running_loop().create_task(self._open())
            opening.add_done_callback(_retrieve)
        if not opening.done():
            await asyncio.shield(opening)
        elif opening.cancelled() or opening.exception() is not None:
            opening.result()

    async def _open(self) -> None:
        connections: list[Connection] = []
        try:
            connections.append(await self.acquire())
            while len(connections) < self.min_size:
                connections.append(await self.acquire())
        except BaseException:
            self._opened = None
            for connection in connections:
                self.release(connection)
            raise
        for connection in connections:
            self.release(connection)
        logger.info("pool %r opened", self)

    def _pop_live(self) -> Connection | None:
        """The most recently returned idle connection not expired nor known dead (those
        found on the way are closed), or None."""
        idle = self._idle
        while idle:
            connection = idle.pop()
            if self._expired(connection, time.monotonic()) or not connection.alive():
                self._discard(connection)
                continue
            return connection
        return None

    def take(self) -> Connection | None:
        """An idle connection ready for use at once, or None (then :meth:`acquire`):
        the common case without a coroutine."""
        if self.check or self._closed:
            return None
        return self._pop_live()

    async def acquire(self, timeout: float | None = None) -> Connection:
        """Borrow a connection; wait up to ``timeout`` seconds when all are in use."""
        if self._closed:
            raise PoolClosed(f"The async pool of database {self.alias!r} is closed.")
        while (connection := self._pop_live()) is not None:
            if self.check and not await self._check(connection):
                continue
            return connection
        if self._size < self.max_size:
            self._size += 1
            return await self._connect()
        return await self._wait(self.timeout if timeout is None else timeout)

    def release(self, connection: Connection) -> None:
        """Return a connection: hand it to a waiter, keep it, or close it if unusable."""
        now = time.monotonic()
        if self._closed or not connection.reusable() or self._expired(connection, now, idle=False):
            if connection.lost():
                self._drop_idle(connection)
            self._discard(connection)
            return
        connection.last_used = now
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)
        self._trim(now)

    async def close(self) -> None:
        """Close idle connections, fail waiters; connections in use close on return."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(PoolClosed(f"The async pool of {self.alias!r} was closed."))
        idle = list(self._idle)
        self._idle.clear()
        self._size -= len(idle)
        # Awaited here, not left to tasks: at a loop's end nothing would run them.
        await asyncio.gather(
            *(self._close_quietly(connection) for connection in idle),
            *self._closing,
            return_exceptions=True,
        )
        logger.info("pool %r closed", self)

    def abandon(self) -> None:
        """The event loop is gone: close what can be closed without it, the connections
        still held by tasks that will never run again included (a loop closed with
        tasks pending), so no driver thread or socket outlives it."""
        self._closed = True
        self._idle.clear()
        while self._connections:
            _close_now(self._connections.pop())

    async def _check(self, connection: Connection) -> bool:
        """CHECK: a round trip proves the connection alive; a dead one is dropped."""
        try:
            await connection.ping()
        except BaseException as exc:
            if not isinstance(exc, Exception):
                connection.interrupt()
            self._discard(connection)
            if not isinstance(exc, connection.driver.Error):
                raise
            logger.info("pool %r dropped a connection that failed its check: %s", self, exc)
            return False
        return True

    def _drop_idle(self, lost: Connection) -> None:
        """The server dropped a connection: idle ones opened before it are likely dead
        (a restart, a failover), so they go too rather than fail one query each."""
        if self._idle:
            logger.info("pool %r lost a connection; closing %d idle ones", self, len(self._idle))
        while self._idle:
            self._discard(self._idle.pop())

    async def _connect(self) -> Connection:
        """Open a connection for a slot already counted in ``_size``."""
        try:
            connection = await self.backend.connect()
        except BaseException as exc:
            self._size -= 1
            self._hand_over_slot()
            error = translate(exc, self.backend.driver)
            if error is not None:
                raise error from exc
            raise
        self._connections.add(connection)
        return connection

    async def _wait(self, timeout: float) -> Connection:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Connection | None] = loop.create_future()
        self._waiters.append(waiter)
        # One timer handle per waiter: cheaper than asyncio.timeout()'s cancel-and-uncancel
        # of the task, and a waiter that times out is failed in place.
        timer = loop.call_later(timeout, self._time_out, waiter, timeout)
        try:
            connection = await waiter
        except BaseException:
            self._abandon(waiter)
            raise
        finally:
            timer.cancel()
        if connection is None:  # a slot was freed for us: open a new connection in it
            return await self._connect()
        return connection

    def _time_out(self, waiter: asyncio.Future[Connection | None], timeout: float) -> None:
        if waiter.done():
            return
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
        waiter.set_exception(
            PoolTimeout(
                f"No connection of the async pool of database {self.alias!r} became free "
                f"within {timeout} seconds (MAX_SIZE={self.max_size}). Raise "
                f"DATABASES[{self.alias!r}]['ASYNC']['MAX_SIZE'] or 'TIMEOUT', or hold "
                "connections for less time."
            )
        )

    def _abandon(self, waiter: asyncio.Future[Connection | None]) -> None:
        """A waiter gave up: give back whatever it was handed in the meantime."""
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            connection = waiter.result()
            if connection is None:
                self._size -= 1
                self._hand_over_slot()
            else:
                self.release(connection)
        else:
            waiter.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _hand_over_slot(self) -> None:
        """A slot became free: let the first live waiter open a connection in it."""
        while self._waiters and self._size < self.max_size:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._size += 1
                waiter.set_result(None)
                return

    def _discard(self, connection: Connection) -> None:
        self._size -= 1
        if not connection.broken:
            logger.debug("closing connection of pool %r", self)
        else:
            # Its task was cancelled mid-statement (an ASGI client that went away, a
            # timeout): routine under load, and the connection can't be trusted again.
            logger.info("closing a connection interrupted mid-statement, pool %r", self)
        loop = asyncio._get_running_loop()
        if self._closed or loop is None:
            # Returned after close() (a task ending with the loop), or by a coroutine the
            # garbage collector closed: close it now rather than in a task that the
            # ending loop may never run.
            self._connections.discard(connection)
            _close_now(connection)
            return
        task = _cleanup_task(loop, self._close_quietly(connection))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        self._hand_over_slot()

    async def _close_quietly(self, connection: Connection) -> None:
        try:
            if connection.broken:
                await connection.stop_statement()
            await connection.close()
        except Exception:  # a dead connection may fail to close; nothing to do
            logger.debug("error closing a discarded connection", exc_info=True)
        except BaseException:  # cancelled, or destroyed with its loop: close without waiting
            _close_now(connection)
            raise
        finally:
            self._connections.discard(connection)

    def _expired(self, connection: Connection, now: float, *, idle: bool = True) -> bool:
        if self.max_lifetime is not None and now - connection.created > self.max_lifetime:
            return True
        return (
            idle
            and self.max_idle is not None
            and now - connection.last_used > self.max_idle
            and self._size > self.min_size
        )

    def _trim(self, now: float) -> None:
        """Close connections idle for longer than MAX_IDLE, down to MIN_SIZE."""
        idle = self._idle
        while idle and self._size > self.min_size and self._expired(idle[0], now):
            self._discard(idle.popleft())


def _cleanup_task(loop: asyncio.AbstractEventLoop, work: Any) -> asyncio.Task[None]:
    """A task of the pool's own clean-up. If its loop is closed before it ran (a loop
    closed with tasks pending), the connection is closed when pools are swept, so the
    task is not reported as destroyed while pending."""
    task = loop.create_task(work)
    task._log_destroy_pending = False  # type: ignore[attr-defined]
    return task


def _close_now(connection: Connection) -> None:
    try:
        connection.close_now()
    except Exception:  # best effort: no loop to wait on
        logger.debug("error closing a connection without its loop", exc_info=True)


def _retrieve(task: asyncio.Task[None]) -> None:
    """An opening whose every caller was cancelled: its error is not "never retrieved"."""
    if not task.cancelled():
        task.exception()
