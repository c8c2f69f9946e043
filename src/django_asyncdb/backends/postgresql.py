"""PostgreSQL through psycopg 3's AsyncConnection."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import time
from typing import Any

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg import Column
from psycopg import sql as pgsql
from psycopg.pq import ConnStatus, ExecStatus, TransactionStatus
from psycopg.types.datetime import TimestamptzLoader
from psycopg.waiting import Ready, Wait

from ..conf import AsyncSettings
from ..sockets import InputWatch
from . import base
from .base import Params, Result, Row

_cursor_names = itertools.count(1)
_READY_R, _READY_W = Ready.R, Ready.W
_WAIT_R, _WAIT_W = Wait.R, Wait.W
_TUPLES_OK = ExecStatus.TUPLES_OK
_IDLE, _CONNECTION_OK = TransactionStatus.IDLE, ConnStatus.OK


class AsyncConnection(psycopg.AsyncConnection[Any]):
    """psycopg's AsyncConnection with a cheaper wait for the server's answer.

    psycopg registers the socket with the event loop before each wait and removes it
    after (two ``epoll_ctl`` calls and the selector's bookkeeping), and arms a 0.1 s
    timer to check for Ctrl-C, which asyncio does not need. Here the socket stays
    registered for reading while the connection lives, and a wait is one future.
    Readable with no one waiting (a notice, the server's goodbye while idle): the
    registration is dropped, so an idle socket never spins the loop, and made again
    by the next wait. It is always dropped before the socket closes.

    On cancellation the statement is left as is: the pool never reuses an interrupted
    connection and asks the server to cancel the statement before closing it
    (``PgConnection.abort``), where psycopg's own wait would cancel and drain it.
    """

    _reading: asyncio.Future[None] | None = None
    _reader_loop: asyncio.AbstractEventLoop | None = None
    _reader_fd = -1

    async def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        if timeout is not None:
            return await super().wait(gen, interval, timeout)
        try:
            state = next(gen)
            loop = asyncio.get_running_loop()
            while True:
                if state & _WAIT_W:
                    state = gen.send(await self._wait_write(loop, state))
                    continue
                self._register(loop)
                future = self._reading = loop.create_future()
                try:
                    await future
                finally:
                    self._reading = None
                state = gen.send(_READY_R)
        except StopIteration as done:
            return done.value
        except OSError as exc:  # as psycopg: the socket is gone
            raise psycopg.OperationalError("connection socket closed") from exc

    async def _wait_write(self, loop: asyncio.AbstractEventLoop, state: int) -> int:
        """Wait until writable (or readable, if asked for too): rare, for statements
        larger than the socket's buffer and pipelines."""
        future = loop.create_future()
        fd = self.pgconn.socket
        ready = 0

        def writable() -> None:
            nonlocal ready
            ready |= _READY_W
            if not future.done():
                future.set_result(None)

        loop.add_writer(fd, writable)
        if state & _WAIT_R:
            self._register(loop)
            self._reading = future
        try:
            await future
        finally:
            self._reading = None
            loop.remove_writer(fd)
        return ready or _READY_R

    def _register(self, loop: asyncio.AbstractEventLoop) -> None:
        """Keep the socket registered for reading with ``loop`` (once per loop)."""
        if self._reader_loop is loop:
            return
        self._unregister()
        fd = self.pgconn.socket
        loop.add_reader(fd, self._readable)
        self._reader_loop, self._reader_fd = loop, fd

    def _unregister(self) -> None:
        loop = self._reader_loop
        if loop is not None:
            self._reader_loop = None
            loop.remove_reader(self._reader_fd)

    def _readable(self) -> None:
        future = self._reading
        if future is None:
            self._unregister()  # nobody waits: don't let an idle socket spin the loop
            return
        if future.done():
            return
        # Read what arrived, and wake the task only once libpq can hand over a result
        # without blocking. The selector is level-triggered: the loop's next poll, before
        # the woken task has read the answer, reports the socket again, and that stale
        # call would otherwise end the task's next wait at once, for nothing (a second
        # loop iteration and task step per statement). An answer in several packets
        # wakes the task once too.
        pgconn = self.pgconn
        try:
            pgconn.consume_input()
            if pgconn.is_busy():
                return
        except Exception:  # the generator meets the error itself
            pass
        future.set_result(None)

    async def close(self) -> None:
        self._unregister()
        await super().close()

    def finish(self) -> None:
        """Close the libpq connection directly (no I/O to wait for)."""
        self._unregister()
        self.pgconn.finish()


class PgStream(base.Stream):
    """A named server-side cursor read with FETCH, or a client cursor read with fetchmany."""

    def __init__(self, cursor: psycopg.AsyncCursor[Any], name: str | None) -> None:
        self.cursor = cursor
        self.name = name

    async def fetch(self, size: int) -> list[Row]:
        """Fetch up to ``size`` rows."""
        if self.name is None:
            return await self.cursor.fetchmany(size)
        await self.cursor.execute(f'FETCH FORWARD {int(size)} FROM "{self.name}"')
        return await self.cursor.fetchall()

    async def close(self) -> None:
        """Close the cursor (the server-side one first, unless the transaction already
        ended or failed, which took it away)."""
        try:
            info = self.cursor.connection.info
            if self.name is not None and info.transaction_status == TransactionStatus.INTRANS:
                await self.cursor.execute(f'CLOSE "{self.name}"')
        finally:
            await self.cursor.close()


def _loaded_rows(cursor: psycopg.AsyncCursor[Any]) -> list[Row] | None:
    """The rows of the result the cursor holds (already received: what psycopg's
    ``fetchall()`` returns, without a coroutine), or None if it holds no rows."""
    result = cursor.pgresult
    if result is None or result.status != _TUPLES_OK:
        return None
    rows: list[Row] = cursor._tx.load_rows(cursor._pos, result.ntuples, cursor._make_row)
    cursor._pos = result.ntuples
    return rows


class _Described:
    """What psycopg's ``Column`` reads of a cursor, kept with a result: its description
    is made when asked for, after the cursor may have run other statements."""

    __slots__ = ("_encoding", "adapters", "pgresult")

    def __init__(self, pgresult: Any, cursor: psycopg.AsyncCursor[Any]) -> None:
        self.pgresult = pgresult
        self._encoding = cursor._encoding
        self.adapters = cursor.adapters

    def columns(self) -> list[Column]:
        return [Column(self, i) for i in range(self.pgresult.nfields)]  # type: ignore[arg-type]


class _Sent:
    """The statement of a BEGIN-prefixed send, as Django's query logging reads it from
    psycopg's ``cursor._query`` (the statement alone, as Django's own cursor sent it)."""

    __slots__ = ("query",)

    def __init__(self, query: bytes) -> None:
        self.query = query


class PgConnection(base.Connection):
    """A psycopg AsyncConnection in autocommit mode with one reusable cursor.

    With client-side binding (Django's default), a transaction's BEGIN is not a round
    trip of its own: it goes in front of the transaction's first statement, in the same
    simple-protocol message (``BEGIN; INSERT ...``), as psycopg's sync connection (what
    Django's sync ORM uses) sends it lazily with the first statement too. PostgreSQL
    takes a transaction's snapshot at its first statement, not at BEGIN, so nothing the
    transaction sees changes.
    """

    driver = psycopg

    def __init__(self, raw: AsyncConnection, begin_sql: str, role_sql: str = "") -> None:
        self.raw = raw
        self.cursor = raw.cursor()
        self.begin_sql = begin_sql
        # Behind a transaction-mode pooler, OPTIONS["assume_role"] as "SET LOCAL ROLE ...":
        # sent with each transaction's first statement and with each statement outside a
        # transaction (client-side binding only: see conf.check_pooler).
        self.role_prefix = f"{role_sql}; " if role_sql else ""
        self.begin_prefix = f"{begin_sql}; {self.role_prefix}"
        self.created = self.last_used = time.monotonic()
        self._watch: InputWatch | None = None
        self.failed: Any = None
        self.can_prefix = isinstance(self.cursor, psycopg.AsyncClientCursor)

    async def _execute(self, cursor: psycopg.AsyncCursor[Any], sql: str, params: Params) -> None:
        """psycopg's ``cursor.execute()`` without its connection lock, an asyncio.Lock
        taken and released per statement (about 7% of a short statement's instructions):
        a connection serves one task at a time here (the pool's, or a transaction's turn)."""
        pending = self.pending
        if pending:
            self.pending = ""  # sent: the server runs BEGIN even if the statement fails
            skip = 2 if self.role_prefix else 1
        elif self.role_prefix and self.raw.pgconn.transaction_status == _IDLE:
            pending, skip = self.role_prefix, 1  # a transaction of its own on the pooler
        else:
            try:
                await self.raw.wait(cursor._execute_gen(sql, params))
            except Exception:
                self.failed = cursor._query
                raise
            return
        # (A role's literal may hold a %, which the statement's placeholders would read.)
        sent = pending if params is None else pending.replace("%", "%%")
        try:
            await self.raw.wait(cursor._execute_gen(sent + sql, params))
        finally:
            query = cursor._query
            if query is not None and query.query is not None:
                cut = len(pending.encode())
                cursor._query = _Sent(query.query[cut:])  # type: ignore[assignment]
            self.failed = cursor._query
        for _ in range(skip):
            cursor.nextset()  # past BEGIN's (and SET LOCAL ROLE's) result, to the statement's

    def failed_query(self) -> Any:
        """psycopg's record of the statement that just failed (for Django's logging)."""
        return self.failed

    async def fetchall(self, sql: str, params: Params) -> list[Row]:
        """Run a query and return all its rows."""
        cursor = self.cursor
        await self._execute(cursor, sql, params)
        rows = _loaded_rows(cursor)
        return rows if rows is not None else await cursor.fetchall()  # psycopg's error

    async def run(self, sql: str, params: Params) -> Result:
        """Run any statement."""
        cursor = self.cursor
        await self._execute(cursor, sql, params)
        result = cursor.pgresult
        if result is not None and result.status == _TUPLES_OK:
            rows = _loaded_rows(cursor) or []
            description: Any = _Described(result, cursor).columns
        else:
            rows, description = [], cursor.description  # None, or "SELECT ;"'s []
        # cursor._query: the statement as sent, for Django's query logging.
        return Result(description, rows, cursor.rowcount, None, cursor._query)

    async def open_stream(self, sql: str, params: Params, *, server_side: bool) -> PgStream:
        """Declare a server-side cursor (inside a transaction) or run on a client cursor."""
        cursor = self.raw.cursor()
        try:
            if server_side:
                name = f"_adb_curs_{next(_cursor_names)}"
                await self._execute(cursor, f'DECLARE "{name}" NO SCROLL CURSOR FOR {sql}', params)
                return PgStream(cursor, name)
            await self._execute(cursor, sql, params)
            return PgStream(cursor, None)
        except BaseException:
            await cursor.close()
            raise

    async def begin(self) -> None:
        """Start a transaction, at the isolation level from OPTIONS if one is set (and
        in the role, behind a transaction-mode pooler)."""
        await self.cursor.execute(self.begin_prefix[:-2])

    async def begin_with_next(self) -> None:
        """BEGIN goes with the next statement (client-side binding: one simple-protocol
        message may hold several statements); with server-side binding, now."""
        if self.can_prefix:
            self.pending = self.begin_prefix
        else:
            await self.begin()

    async def abort(self) -> None:
        """Ask the server to cancel a statement still running, so it stops working for us."""
        raw = self.raw
        if not raw.closed and raw.info.transaction_status == TransactionStatus.ACTIVE:
            await raw.cancel_safe(timeout=5.0)

    def reusable(self) -> bool:
        """Open, not broken, and idle outside any transaction."""
        pgconn = self.raw.pgconn  # read directly: psycopg's info makes objects per access
        return (
            not self.broken
            and not self.pending
            and pgconn.status == _CONNECTION_OK
            and pgconn.transaction_status == _IDLE
        )

    def alive(self) -> bool:
        """Idle, nothing may arrive on the socket: anything readable (a FATAL message
        from a terminated backend, the end of the stream) means the server is gone."""
        raw = self.raw
        if raw.closed:
            return False
        watch = self._watch
        if watch is None:
            watch = self._watch = InputWatch(raw.pgconn.socket)
        return not watch.pending()

    def lost(self) -> bool:
        """The server closed the connection (psycopg marks it bad)."""
        return not self.broken and self.raw.closed

    async def close(self) -> None:
        """Close the connection."""
        await self.raw.close()

    def close_now(self) -> None:
        """Close the libpq connection directly (no I/O to wait for)."""
        self.raw.finish()


class Backend(base.Backend):
    """Connections configured like Django's own PostgreSQL wrapper configures them."""

    vendor = "postgresql"
    driver = psycopg
    stream_needs_transaction = True

    def __init__(self, settings: AsyncSettings) -> None:
        super().__init__(settings)
        self.server_version: int | None = None
        options = self.wrapper.settings_dict["OPTIONS"]
        level = options.get("isolation_level")
        if level is None:
            self.begin_sql = "BEGIN"
        else:
            try:
                name = psycopg.IsolationLevel(level).name.replace("_", " ")
            except ValueError:
                raise ImproperlyConfigured(
                    f"Invalid transaction isolation level {level} specified for "
                    f"{self.alias!r}. Use one of the psycopg.IsolationLevel values."
                ) from None
            self.begin_sql = f"BEGIN ISOLATION LEVEL {name}"

    async def connect(self) -> PgConnection:
        """Open a connection with Django's parameters, time zone and role."""
        wrapper = self.wrapper
        params = wrapper.get_connection_params()
        server_binding = wrapper.settings_dict["OPTIONS"].get("server_side_binding") is True
        params["cursor_factory"] = (
            psycopg.AsyncCursor if server_binding else psycopg.AsyncClientCursor
        )
        params["autocommit"] = True
        raw = await AsyncConnection.connect(**params)
        per_transaction = ""
        try:
            async with raw.cursor() as cursor:
                timezone_name = wrapper.timezone_name
                if timezone_name and raw.info.parameter_status("TimeZone") != timezone_name:
                    await cursor.execute(wrapper.ops.set_time_zone_sql(), [timezone_name])
                role = wrapper.settings_dict["OPTIONS"].get("assume_role")
                if role and not self.settings.pooler:
                    await cursor.execute(pgsql.SQL("SET ROLE {}").format(pgsql.Literal(role)))
                elif role:
                    # A per-connection SET ROLE would stay on a server connection the
                    # pooler hands to other clients, and be missing on ours.
                    role_sql = pgsql.SQL("SET LOCAL ROLE {}").format(pgsql.Literal(role))
                    per_transaction = role_sql.as_string(raw)
        except BaseException:
            await raw.close()
            raise
        if self.fast_timestamptz(wrapper, raw):
            raw.adapters.register_loader("timestamptz", TimestamptzLoader)
        if self.server_version is None:
            self.server_version = raw.info.server_version
            self.install_facts(wrapper)
            wrapper.check_database_version_supported()
        return PgConnection(raw, self.begin_sql, per_transaction)

    @staticmethod
    def fast_timestamptz(wrapper: BaseDatabaseWrapper, raw: psycopg.AsyncConnection[Any]) -> bool:
        """Whether psycopg's own timestamptz loader (compiled with psycopg[binary]) gives
        exactly what Django's does, so it can replace it.

        Django's loader is a pure-Python subclass that replaces the tzinfo of psycopg's
        result with the connection's time zone (its ``wrapper.timezone``); measured, it
        was ~43% of the client's instructions on a 500-row read. Where the session's time
        zone is UTC and Django wants ``datetime.timezone.utc`` (USE_TZ with no database
        TIME_ZONE), psycopg's loader already returns that very tzinfo object.
        """
        return wrapper.timezone is datetime.UTC and raw.info.parameter_status("TimeZone") == "UTC"

    def install_facts(self, wrapper: BaseDatabaseWrapper) -> None:
        """Django reads ``pg_version`` (a cached property) through a sync connection."""
        if self.server_version is not None and "pg_version" not in wrapper.__dict__:
            wrapper.__dict__["pg_version"] = self.server_version
