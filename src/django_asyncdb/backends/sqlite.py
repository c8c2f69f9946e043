"""SQLite through aiosqlite, with Django's own connection set-up (functions, pragmas)."""

from __future__ import annotations

import contextlib
import inspect
import sqlite3
import time
from functools import lru_cache
from typing import Any

import aiosqlite
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.sqlite3.base import SQLiteCursorWrapper

from ..connections import in_event_loop, thread_level
from . import base
from .base import Params, Result, Row


@lru_cache(maxsize=2048)
def _qmark(sql: str) -> str:
    """Django writes ``%s`` placeholders; sqlite3 wants ``?`` (Django's own conversion)."""
    return SQLiteCursorWrapper.convert_query(None, sql)


def _convert(sql: str, params: Params) -> str:
    """Convert placeholders the way Django's SQLiteCursorWrapper.execute does."""
    if params is None:
        return sql
    if isinstance(params, dict):
        return SQLiteCursorWrapper.convert_query(None, sql, param_names=list(params))
    return _qmark(sql)


_features_classes: dict[type, type] = {}


def _features_with_limits(cls: type) -> type:
    """A subclass of Django's SQLite features whose ``max_query_params`` (a property that
    reads the live sync connection in Django 6) answers from the async side in the loop."""
    if cls in _features_classes:
        return _features_classes[cls]
    prop = inspect.getattr_static(cls, "max_query_params", None)
    if not isinstance(prop, property) or prop.fget is None:
        _features_classes[cls] = cls
        return cls
    read_sync = prop.fget

    def max_query_params(self: Any) -> Any:
        # The loop's thread, or a worker thread that joined an async block: no sync
        # connection to ask there.
        if in_event_loop() or thread_level(self.connection.alias) is not None:
            return self._asyncdb_max_query_params
        return read_sync(self)

    subclass = type(cls.__name__, (cls,), {"max_query_params": property(max_query_params)})
    _features_classes[cls] = _features_classes[subclass] = subclass
    return subclass


class SqliteStream(base.Stream):
    """An sqlite3 cursor stepped with fetchmany: rows are produced lazily."""

    def __init__(self, cursor: aiosqlite.Cursor) -> None:
        self.cursor = cursor

    async def fetch(self, size: int) -> list[Row]:
        """Fetch up to ``size`` rows."""
        return list(await self.cursor.fetchmany(size))

    async def close(self) -> None:
        """Close the cursor."""
        await self.cursor.close()


class SqliteConnection(base.Connection):
    """An aiosqlite connection in autocommit mode (``isolation_level = None``)."""

    driver = sqlite3

    def __init__(self, raw: aiosqlite.Connection, begin_sql: str) -> None:
        self.raw = raw
        self.begin_sql = begin_sql
        self.closed = False
        self._stopped = False  # aiosqlite's thread told to end
        self.created = self.last_used = time.monotonic()

    async def fetchall(self, sql: str, params: Params) -> list[Row]:
        """Run a query and return all its rows."""
        if self.pending:
            return (await self.run(sql, params)).rows
        return list(await self.raw.execute_fetchall(_convert(sql, params), params or ()))

    async def run(self, sql: str, params: Params) -> Result:
        """Run any statement: one trip to aiosqlite's thread, not one per cursor call."""
        pending, self.pending = self.pending, ""
        try:
            return await self.raw._execute(
                self._run_in_thread, _convert(sql, params), params or (), pending
            )
        except Exception:
            if pending and not self.raw.in_transaction:
                # BEGIN itself failed (a locked database), or SQLite ended the
                # transaction on the error: there is nothing to roll back.
                self.unbegun = True
            raise

    def _run_in_thread(self, sql: str, params: Any, begin: str = "") -> Result:
        if begin:
            self.raw._conn.execute(begin)
        cursor = self.raw._conn.execute(sql, params)
        try:
            description = cursor.description
            rows = cursor.fetchall() if description is not None else []
            return Result(
                list(description) if description else None,
                rows,
                cursor.rowcount,
                cursor.lastrowid,
            )
        finally:
            cursor.close()

    async def open_stream(self, sql: str, params: Params, *, server_side: bool) -> SqliteStream:
        """Start stepping a query."""
        if self.pending:
            await self.begin()
        return SqliteStream(await self.raw.execute(_convert(sql, params), params or ()))

    async def begin(self) -> None:
        """BEGIN, with OPTIONS['transaction_mode'] as Django uses it."""
        self.pending = ""
        await self.run(self.begin_sql, None)

    async def begin_with_next(self) -> None:
        """BEGIN runs in aiosqlite's thread in the same trip as the next statement (each
        trip to that thread costs a wake-up on both sides); nothing runs between them, so
        the transaction, and an IMMEDIATE one's write lock, start as they would have."""
        self.pending = self.begin_sql

    async def abort(self) -> None:
        """Stop a running statement."""
        self.stop_now()

    def stop_now(self) -> None:
        """sqlite3's interrupt() is safe from any thread: called from here, not queued
        behind the running statement in aiosqlite's thread, it stops it at once."""
        connection = self.raw._connection
        if connection is not None:
            with contextlib.suppress(sqlite3.ProgrammingError):  # already closed
                connection.interrupt()

    def reusable(self) -> bool:
        """Open, not broken, and outside any transaction."""
        return (
            not self.broken and not self.closed and not self.pending and not self.raw.in_transaction
        )

    async def close(self) -> None:
        """Close the connection and stop its thread."""
        self.closed = True
        if not self._stopped:
            await self.raw.close()
            self._stopped = True

    def close_now(self) -> None:
        """Close the sqlite3 connection and end aiosqlite's thread, expecting no reply.

        aiosqlite's own stop() answers on a future of whatever loop is current, which in
        a sweep may close before the thread answers; so queue the same work unanswered.
        Also when a close() was under way: its loop may have ended mid-way.
        """
        if self._stopped:
            return
        self.closed = self._stopped = True
        queue = getattr(self.raw, "_tx", None)
        sentinel = getattr(aiosqlite.core, "_STOP_RUNNING_SENTINEL", None)
        if queue is None or sentinel is None:  # another aiosqlite: its public way
            self.raw.stop()
            return
        raw = self.raw
        self.stop_now()  # a statement of a task that will never resume

        def close_and_stop() -> object:
            connection, raw._connection = raw._connection, None
            if connection is not None:
                connection.close()
            return sentinel

        raw._running = False
        queue.put_nowait((None, close_and_stop))


class Backend(base.Backend):
    """Connections opened by Django's own ``get_new_connection`` in aiosqlite's thread."""

    vendor = "sqlite"
    driver = sqlite3
    max_query_params: int | None = None

    async def connect(self) -> SqliteConnection:
        """Open a connection exactly as Django opens one, then switch it to autocommit."""
        wrapper = self.wrapper
        params = wrapper.get_connection_params()
        mode = getattr(wrapper, "transaction_mode", None)
        begin_sql = f"BEGIN {mode}" if mode else "BEGIN"

        def connector() -> sqlite3.Connection:
            # Runs in aiosqlite's own thread, where no event loop runs, so Django's
            # async-safety guard lets its connection set-up through.
            connection: sqlite3.Connection = wrapper.get_new_connection(params)
            connection.isolation_level = None
            self.max_query_params = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            return connection

        raw = await aiosqlite.Connection(connector, 64)
        return SqliteConnection(raw, begin_sql)

    def install_facts(self, wrapper: BaseDatabaseWrapper) -> None:
        """Django 6 reads ``features.max_query_params`` from the live sync connection."""
        features = wrapper.features
        if "_asyncdb_max_query_params" not in features.__dict__:
            features.__class__ = _features_with_limits(type(features))
            features._asyncdb_max_query_params = self.max_query_params
