"""What every vendor provides below the seam: connect, run SQL, stream, transactions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from ..conf import AsyncSettings

logger = logging.getLogger("django_asyncdb.pool")

Params = Sequence[Any] | dict[str, Any] | None
Row = Sequence[Any]


class Result:
    """Everything a statement produced: column names, rows, row count, last row id.

    ``description`` may be given as a function that makes it: built on first access
    only (Django's ORM reads rows and row counts, rarely the columns' description).
    """

    __slots__ = ("_description", "lastrowid", "query", "rowcount", "rows")

    def __init__(
        self,
        description: list[Any] | Callable[[], list[Any] | None] | None,
        rows: list[Any],
        rowcount: int,
        lastrowid: Any = None,
        query: Any = None,
    ) -> None:
        self._description = description
        self.rows = rows
        self.rowcount = rowcount
        self.lastrowid = lastrowid
        self.query = query  # the driver's record of the statement sent, for query logging

    @property
    def description(self) -> list[Any] | None:
        """Column descriptions (None for a statement that returns no rows)."""
        description = self._description
        if callable(description):
            description = self._description = description()
        return description


class Stream:
    """A cursor that yields a large result in chunks."""

    async def fetch(self, size: int) -> list[Row]:
        """Fetch up to ``size`` rows; an empty list means the end."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release the cursor on the server."""
        raise NotImplementedError


class Connection:
    """One driver connection, always in autocommit mode between transactions."""

    driver: ModuleType
    broken: bool = False
    created: float = 0.0
    last_used: float = 0.0
    stopping: asyncio.Task[None] | None = None
    # The BEGIN a vendor sends with the next statement (begin_with_next), or "".
    pending = ""
    # A deferred BEGIN failed: no transaction to end.
    unbegun = False

    async def fetchall(self, sql: str, params: Params) -> list[Row]:
        """Run a query and return all its rows."""
        raise NotImplementedError

    async def fetchone(self, sql: str, params: Params) -> Row | None:
        """Run a query and return its first row, or None."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def run(self, sql: str, params: Params) -> Result:
        """Run any statement and return its description, rows and row count."""
        raise NotImplementedError

    def run_now(self, sql: str, params: Params) -> Result | None:
        """Run the statement at once, without awaiting, if this connection can (SQLite's
        on the loop's thread); None: the caller awaits :meth:`run`."""
        return None

    def failed_query(self) -> Any:
        """The driver's record of the statement that just failed, as Django's logging
        reads it from a driver cursor (None if the driver keeps none)."""
        return None

    async def open_stream(self, sql: str, params: Params, *, server_side: bool) -> Stream:
        """Start streaming a query's rows (inside a transaction for server-side cursors)."""
        raise NotImplementedError

    async def begin(self) -> None:
        """Start a transaction."""
        raise NotImplementedError

    async def begin_with_next(self) -> None:
        """Start a transaction that the connection's next statement runs in. A vendor
        that can send BEGIN in one round trip with that statement does it then (and a
        transaction that runs no statement costs no round trip)."""
        await self.begin()

    def end_unbegun(self) -> bool:
        """At COMMIT or ROLLBACK: True if no transaction is open on the server (its
        deferred BEGIN was never sent, or failed), so there is nothing to end."""
        unbegun = bool(self.pending) or self.unbegun
        self.pending, self.unbegun = "", False
        return unbegun

    async def commit(self) -> None:
        """Commit the transaction."""
        await self.run("COMMIT", None)

    async def rollback(self) -> None:
        """Roll back the transaction."""
        await self.run("ROLLBACK", None)

    async def abort(self) -> None:
        """Stop a statement still running after its task was cancelled (before closing)."""

    def interrupt(self) -> None:
        """Its task was cancelled mid-statement: never reuse it, and stop the statement
        now, so the transaction's next statement fails at once instead of waiting."""
        if self.broken:
            return
        self.broken = True
        self.stop_now()

    def stop_now(self) -> None:
        """Start stopping the interrupted statement (a vendor that can do it without
        waiting does it here)."""
        from ..pool import _cleanup_task

        self.stopping = _cleanup_task(asyncio.get_running_loop(), self._abort_quietly())

    async def _abort_quietly(self) -> None:
        try:
            await self.abort()
        except Exception:  # the connection is closed next anyway
            logger.debug("error stopping an interrupted statement", exc_info=True)

    async def stop_statement(self) -> None:
        """Wait until an interrupted statement is stopped (before closing)."""
        if self.stopping is None:
            await self._abort_quietly()
        else:
            await asyncio.shield(self.stopping)

    def reusable(self) -> bool:
        """True if the connection is open, idle and outside any transaction."""
        raise NotImplementedError

    def alive(self) -> bool:
        """False if an idle connection is known dead without a round trip (its socket
        has something to read: the server's goodbye, or the end of the stream)."""
        return True

    def lost(self) -> bool:
        """True if the server or the network dropped the connection (not us)."""
        return False

    async def ping(self) -> None:
        """One round trip (``CHECK``)."""
        await self.run("SELECT 1", None)

    async def close(self) -> None:
        """Close the connection."""
        raise NotImplementedError

    def close_now(self) -> None:
        """Close without awaiting: for pools whose event loop is gone."""
        raise NotImplementedError


class Backend:
    """Opens connections for one alias and fills the facts Django's compiler reads."""

    vendor = ""
    driver: ModuleType
    # PostgreSQL declares server-side cursors inside a transaction; SQLite steps lazily.
    stream_needs_transaction = False
    # MySQL's unbuffered cursors block their connection until read to the end: a stream
    # inside a transaction (sharing its connection) must be buffered.
    streams_only_alone = False

    def __init__(self, settings: AsyncSettings) -> None:
        self.settings = settings
        self.alias = settings.alias

    @property
    def wrapper(self) -> BaseDatabaseWrapper:
        """Django's connection object for this alias in the current thread (never opened here)."""
        return connections[self.alias]

    async def connect(self) -> Connection:
        """Open a new autocommit connection configured as Django configures its own."""
        raise NotImplementedError

    def runs_now(self, sql: str) -> bool:
        """Whether a connection may run the statement at once, without awaiting
        (:meth:`Connection.run_now`): SQLite's short statements."""
        return False

    def install_facts(self, wrapper: BaseDatabaseWrapper) -> None:
        """Give Django's wrapper the server facts it would otherwise connect to learn."""

    def use_server_side_cursors(self) -> bool:
        """Whether chunked reads stream from a server-side cursor."""
        return not self.wrapper.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
