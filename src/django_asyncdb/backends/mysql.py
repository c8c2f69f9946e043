"""MariaDB and MySQL through asyncmy.

asyncmy was chosen over aiomysql by measuring both on the same work
(``python -m benchmarks.mysql_drivers``; figures in the README): it is faster with one
task and much faster with many (its protocol code is compiled). Both speak the same
DB-API dialect as Django's MySQLdb (``%s`` parameters, client-side escaping), so
Django's SQL runs unchanged.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

import asyncmy
import asyncmy.errors
from asyncmy.constants import ER, FIELD_TYPE
from asyncmy.converters import conversions
from asyncmy.cursors import Cursor, SSCursor
from django.core.exceptions import ImproperlyConfigured
from django.db.backends import utils as backend_utils
from django.db.backends.base.base import BaseDatabaseWrapper

from ..conf import AsyncSettings
from . import base
from .base import Params, Result, Row

# Django's MySQL backend reads TIME columns as datetime.time (MySQLdb would give
# timedelta); the same decoders for asyncmy, with Django's own typecast.
_CONVERSIONS = {**conversions, FIELD_TYPE.TIME: backend_utils.typecast_time}
# Keyword arguments of MySQLdb.connect (Django passes OPTIONS through) that asyncmy
# takes under another name.
_RENAMED = {"db": "database", "passwd": "password"}


# Errors MySQLdb (the driver of Django's own MySQL backend) reports as IntegrityError
# where asyncmy reports another class: a missing value for a NOT NULL column without
# default, a duplicate in a unique key.
_MYSQLDB_INTEGRITY_CODES = (ER.NO_DEFAULT_FOR_FIELD, ER.DUP_UNIQUE)


def _integrity_codes() -> tuple[int, ...]:
    """Error codes Django's MySQL cursor re-raises as IntegrityError, and MySQLdb's."""
    from django.db.backends.mysql.base import CursorWrapper

    return (*CursorWrapper.codes_for_integrityerror, *_MYSQLDB_INTEGRITY_CODES)


def _encode_strictly(sql: str, params: Params, encoding: str) -> None:
    """Encode the SQL and every string parameter as MySQLdb does (UnicodeEncodeError)."""
    sql.encode(encoding)
    if isinstance(params, dict):
        for key, value in params.items():
            _encode_value(key, encoding)
            _encode_value(value, encoding)
    elif isinstance(params, (tuple, list)):
        for value in params:
            _encode_value(value, encoding)
    else:
        _encode_value(params, encoding)


def _encode_value(value: Any, encoding: str) -> None:
    if isinstance(value, str):
        value.encode(encoding)
    elif isinstance(value, (tuple, list, set, frozenset)):  # escaped item by item
        for item in value:
            _encode_value(item, encoding)


class QuietCursor(Cursor):
    """asyncmy's cursor, minus what MySQLdb does not do: after a statement that left
    warnings, asyncmy's sends a SHOW WARNINGS of its own (a statement of the driver's in
    the user's transaction, a round trip more) and logs each warning."""

    async def _show_warnings(self, conn: Any) -> None:
        return None


class QuietSSCursor(QuietCursor, SSCursor):
    """asyncmy's unbuffered cursor, as quiet as :class:`QuietCursor` (SSCursor's methods
    come before Cursor's)."""


# An unbuffered stream's socket receive buffer (the kernel doubles it): what one fetch
# can read ahead. 1M rows streamed at the same speed as with the kernel's default. It stays
# on the pooled connection (the kernel's autotuning is off for that socket from then on).
_STREAM_RECEIVE_BUFFER = 256 * 1024


class MysqlStream(base.Stream):
    """An unbuffered (server-side) or buffered asyncmy cursor read with fetchmany.

    An unbuffered one reads the socket only while a fetch runs. asyncmy's protocol (since
    0.2.11) reads whatever arrives into one growing buffer, with no flow control, and
    parses every complete row in it at the next fetch: a consumer slower than the server
    (Django building objects, other tasks running between chunks) held most of a large
    result in memory (110 MB of Python objects for 300,000 rows of four columns). So the
    transport's reading is paused between fetches (the rows wait in the kernel's socket
    buffers and TCP holds the server back, as with a blocking client), and the stream's
    socket gets a fixed receive buffer (_STREAM_RECEIVE_BUFFER) so that one fetch reads
    no more than that, not the several megabytes the kernel's autotuning allows.
    """

    def __init__(self, cursor: Any, transport: Any = None) -> None:
        self.cursor = cursor
        self.transport = transport  # an unbuffered cursor's connection's

    async def fetch(self, size: int) -> list[Row]:
        """Fetch up to ``size`` rows."""
        transport = self.transport
        if transport is None:
            return list(await self.cursor.fetchmany(size))
        transport.resume_reading()
        rows = list(await self.cursor.fetchmany(size))
        transport.pause_reading()  # (an error leaves it reading: the connection goes on)
        return rows

    async def close(self) -> None:
        """Close the cursor (an unbuffered one first reads what is left)."""
        if self.transport is not None:
            self.transport.resume_reading()
        await self.cursor.close()


class MysqlConnection(base.Connection):
    """An asyncmy connection in autocommit mode."""

    driver = asyncmy.errors

    def __init__(
        self, raw: Any, integrity_codes: tuple[int, ...], connect_kwargs: dict[str, Any]
    ) -> None:
        self.raw = raw
        self.integrity_codes = integrity_codes
        self.connect_kwargs = connect_kwargs
        self.closed = False
        self.created = self.last_used = time.monotonic()

    def _statement(self, sql: str, params: Params) -> str:
        """The statement with its parameters bound, refused where MySQLdb refuses it."""
        raw = self.raw
        if params is None:
            statement = sql
        else:
            # Escaped as asyncmy's cursor.mogrify escapes, but only the formatting is in
            # the try: MySQLdb turns just that TypeError (a %s count that does not match
            # the parameters) into ProgrammingError.
            if isinstance(params, dict):
                args: Any = {key: raw.literal(value) for key, value in params.items()}
            elif isinstance(params, (tuple, list)):
                args = tuple(map(raw.literal, params))
            else:
                args = raw.escape(params)
            try:
                statement = sql % args
            except TypeError as exc:
                _encode_strictly(sql, params, raw._encoding)  # MySQLdb encodes first
                raise asyncmy.errors.ProgrammingError(str(exc)) from exc
        # asyncmy encodes the statement with surrogateescape (bytes parameters arrive
        # as surrogates), so a lone surrogate in a string would go out as a raw byte:
        # a silently wrong match or a DataError. MySQLdb encodes the SQL and each string
        # strictly and raises UnicodeEncodeError. An ASCII statement (an O(1) check)
        # holds no surrogate; only others are checked piece by piece.
        if not statement.isascii():
            _encode_strictly(sql, params, raw._encoding)
        return statement

    async def _execute(self, cursor: Any, sql: str, params: Params) -> None:
        statement = self._statement(sql, params)
        try:
            await cursor.execute(statement)  # no parameters: asyncmy formats nothing more
        except (asyncmy.errors.OperationalError, asyncmy.errors.DataError) as exc:
            # As Django's MySQL cursor (and MySQLdb) do: these codes are integrity errors.
            if exc.args and exc.args[0] in self.integrity_codes:
                raise asyncmy.errors.IntegrityError(*exc.args) from exc
            raise

    async def fetchall(self, sql: str, params: Params) -> list[Row]:
        """Run a query and return all its rows."""
        async with self.raw.cursor(QuietCursor) as cursor:
            await self._execute(cursor, sql, params)
            return list(await cursor.fetchall())

    async def run(self, sql: str, params: Params) -> Result:
        """Run any statement."""
        async with self.raw.cursor(QuietCursor) as cursor:
            await self._execute(cursor, sql, params)
            description = cursor.description
            rows = list(await cursor.fetchall()) if description else []
            return Result(
                list(description) if description else None,
                rows,
                cursor.rowcount,
                cursor.lastrowid,
                cursor._executed,  # the statement as sent, for Django's query logging
            )

    async def open_stream(self, sql: str, params: Params, *, server_side: bool) -> MysqlStream:
        """An unbuffered cursor when the connection is the stream's alone, else buffered."""
        cursor = self.raw.cursor(QuietSSCursor if server_side else QuietCursor)
        try:
            await self._execute(cursor, sql, params)
        except BaseException:
            await cursor.close()
            raise
        # (asyncmy before 0.2.11 reads through a StreamReader, which pauses by itself)
        transport = getattr(self.raw, "_transport", None) if server_side else None
        if transport is not None:
            sock = transport.get_extra_info("socket")
            with contextlib.suppress(OSError, ValueError):  # (closed: the fetch will say so)
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _STREAM_RECEIVE_BUFFER)
            transport.pause_reading()  # until the first fetch
        return MysqlStream(cursor, transport)

    async def begin(self) -> None:
        """Start a transaction (the isolation level is the session's, set at connect)."""
        await self.run("BEGIN", None)

    async def abort(self) -> None:
        """Stop the statement the server may still be running for us: KILL QUERY from a
        second connection (the first is mid-statement)."""
        if self.closed:
            return
        side = await asyncmy.connect(**self.connect_kwargs)
        try:
            async with side.cursor() as cursor:
                await cursor.execute(f"KILL QUERY {int(self.raw.thread_id())}")
        finally:
            side.close()

    def reusable(self) -> bool:
        """Open, not broken, and outside any transaction."""
        return (
            not self.broken
            and not self.closed
            and self._stream_up()
            and not self.raw.get_transaction_status()
        )

    def _stream_up(self) -> bool:
        # asyncmy's protocol keeps reading while the connection is idle: the server's
        # goodbye (a killed connection, a restart) shows as the end of its stream.
        raw = self.raw
        return bool(raw.connected) and not getattr(raw, "_stream_broken", False)

    def alive(self) -> bool:
        """False once the server closed the idle connection (no round trip)."""
        return not self.closed and self._stream_up()

    def lost(self) -> bool:
        """The server or the network closed the connection."""
        return not self.broken and not self.closed and not self._stream_up()

    async def close(self) -> None:
        """Close the connection politely (a broken one: just its socket)."""
        if self.broken:
            self.close_now()
            return
        self.closed = True
        try:
            await self.raw.ensure_closed()
        except Exception:  # the server or socket is gone: close our side
            self.raw.close()

    def close_now(self) -> None:
        """Close the socket without a goodbye. When the connection's event loop is
        already closed, its transport can no longer close the socket: close it here."""
        self.closed = True
        transport: Any = getattr(self.raw, "_transport", None)
        loop = getattr(transport, "_loop", None)
        sock = getattr(transport, "_sock", None)
        if loop is not None and loop.is_closed() and sock is not None:
            sock.close()
            transport._sock = None  # closed: nothing left for the transport to warn about
            return
        self.raw.close()


class Backend(base.Backend):
    """Connections configured as Django's MySQL wrapper configures its own."""

    vendor = "mysql"
    driver = asyncmy.errors
    # Unbuffered cursors hold their connection until read to the end: only when the
    # stream has the connection to itself (outside a transaction).
    streams_only_alone = True

    def __init__(self, settings: AsyncSettings) -> None:
        super().__init__(settings)
        self.server_data: dict[str, Any] | None = None
        self.integrity_codes = _integrity_codes()

    def _connect_kwargs(self) -> dict[str, Any]:
        wrapper = self.wrapper
        params = wrapper.get_connection_params()  # validates the isolation level too
        params = {_RENAMED.get(key, key): value for key, value in params.items()}
        params["conv"] = _CONVERSIONS
        params["autocommit"] = True
        return params

    async def connect(self) -> MysqlConnection:
        """Open a connection with Django's parameters, isolation level and session setup."""
        wrapper = self.wrapper
        params = self._connect_kwargs()
        try:
            raw = await asyncmy.connect(**params)
        except TypeError as exc:
            raise ImproperlyConfigured(
                f"DATABASES[{self.alias!r}]['OPTIONS'] has a key asyncmy does not take: {exc}"
            ) from exc
        connection = MysqlConnection(raw, self.integrity_codes, params)
        try:
            if self.server_data is None:
                self.server_data = await self._server_data(connection)
                self.install_facts(wrapper)
                wrapper.check_database_version_supported()
            assignments = []
            if self.server_data["sql_auto_is_null"]:
                assignments.append("SET SQL_AUTO_IS_NULL = 0")
            if wrapper.isolation_level:
                assignments.append(
                    f"SET SESSION TRANSACTION ISOLATION LEVEL {wrapper.isolation_level.upper()}"
                )
            for statement in assignments:
                await connection.run(statement, None)
        except BaseException:
            connection.close_now()
            raise
        return connection

    @staticmethod
    async def _server_data(connection: MysqlConnection) -> dict[str, Any]:
        """The server facts Django's wrapper keeps in ``mysql_server_data``."""
        row = (
            await connection.fetchall(
                "SELECT VERSION(), @@sql_mode, @@default_storage_engine, "
                "@@sql_auto_is_null, @@lower_case_table_names, "
                "CONVERT_TZ('2000-01-01 00:00:00', 'UTC', 'UTC') IS NOT NULL",
                None,
            )
        )[0]
        return {
            "version": row[0],
            "sql_mode": row[1],
            "default_storage_engine": row[2],
            "sql_auto_is_null": bool(row[3]),
            "lower_case_table_names": bool(row[4]),
            "has_zoneinfo_database": bool(row[5]),
        }

    def install_facts(self, wrapper: BaseDatabaseWrapper) -> None:
        """Django reads ``mysql_server_data`` (a cached property) through a sync connection."""
        if self.server_data is not None and "mysql_server_data" not in wrapper.__dict__:
            wrapper.__dict__["mysql_server_data"] = self.server_data
