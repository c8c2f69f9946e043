"""Test-suite integration: native queries inside Django's test transaction.

``django.test.TestCase`` (and pytest-django's ``db`` fixture) wrap each test in an
atomic block on Django's *sync* connection; data from ``setUpTestData`` lives only
inside that transaction. While such a block is open, native statements on that
database run on the same driver connection, from the event loop's thread, so they
see the test's data and roll back with it. Async ``atomic`` blocks inside become
savepoints, as nested blocks do in Django's tests. (This runs the driver's sync calls
on the loop: fine in tests, and only ever done while a test transaction is open.)
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from . import connections as seam
from .backends import base
from .backends.base import Params, Result, Row

__all__ = ["TestTransaction", "enter", "exit"]


class _InlineStream(base.Stream):
    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    async def fetch(self, size: int) -> list[Row]:
        return list(self.cursor.fetchmany(size))

    async def close(self) -> None:
        self.cursor.close()


class InlineConnection(base.Connection):
    """Django's own driver connection of the test, used directly (never closed here)."""

    def __init__(self, wrapper: BaseDatabaseWrapper) -> None:
        self.wrapper = wrapper
        self.driver = wrapper.Database
        self.created = self.last_used = time.monotonic()

    def _cursor(self) -> Any:
        raw = self.wrapper.connection
        if self.wrapper.vendor == "sqlite":
            from django.db.backends.sqlite3.base import SQLiteCursorWrapper

            return raw.cursor(factory=SQLiteCursorWrapper)
        if self.wrapper.vendor == "mysql":
            from django.db.backends.mysql.base import CursorWrapper

            return CursorWrapper(raw.cursor())  # Django's error-code mapping
        return raw.cursor()

    async def fetchall(self, sql: str, params: Params) -> list[Row]:
        """Run a query and return its rows."""
        return (await self.run(sql, params)).rows

    async def run(self, sql: str, params: Params) -> Result:
        """Run a statement on the test's connection."""
        cursor = self._cursor()
        try:
            cursor.execute(sql, params)
            description = cursor.description
            rows = list(cursor.fetchall()) if description is not None else []
            return Result(
                list(description) if description else None,
                rows,
                cursor.rowcount,
                getattr(cursor, "lastrowid", None),
                # The statement as sent: MySQLdb keeps it in _executed (its _query is
                # a method), psycopg in _query.
                getattr(cursor, "_executed", None)
                if self.wrapper.vendor == "mysql"
                else getattr(cursor, "_query", None),
            )
        finally:
            cursor.close()

    async def open_stream(self, sql: str, params: Params, *, server_side: bool) -> _InlineStream:
        """A client-side cursor (the test transaction is short-lived)."""
        cursor = self._cursor()
        cursor.execute(sql, params)
        return _InlineStream(cursor)

    async def begin(self) -> None:
        """Never called: the test transaction is already open."""
        raise AssertionError("the test transaction is already open")

    def reusable(self) -> bool:
        """The test owns this connection."""
        return False

    async def close(self) -> None:
        """The test owns this connection: nothing to close."""


class TestTransaction:
    """The test's transaction as the outermost level of native atomic blocks.

    Its rollback flag and on_commit list are the sync connection's, so
    ``captureOnCommitCallbacks`` and Django's end-of-test rollback see native work.
    """

    __test__ = False  # not a test class, whatever collects tests

    def __init__(self, alias: str, wrapper: BaseDatabaseWrapper) -> None:
        from .transaction import Transaction

        self.wrapper = wrapper
        self.transaction = Transaction(alias, None, InlineConnection(wrapper))
        self.depth = 0


_lock = threading.Lock()


def enter(alias: str, wrapper: BaseDatabaseWrapper) -> None:
    """A test atomic block was entered on ``wrapper`` (Django's TestCase, pytest-django)."""
    with _lock:
        level = seam.test_levels.get(alias)
        if level is None:
            test = TestTransaction(alias, wrapper)
            level = seam.Level(test.transaction, None, None)
            level.test = test
            _bind(test)
            seam.test_levels[alias] = level
        level.test.depth += 1


def exit(alias: str) -> None:
    """A test atomic block was left."""
    with _lock:
        level = seam.test_levels.get(alias)
        if level is None:
            return
        level.test.depth -= 1
        if level.test.depth <= 0:
            level.closed = True
            del seam.test_levels[alias]


def _bind(test: TestTransaction) -> None:
    """Share the rollback flag and the on_commit list with the sync connection."""
    transaction = test.transaction
    transaction.__class__ = _bound_class(type(transaction))
    # The wrapper's own attribute storage (its routed properties keep sync values there).
    transaction._sync_state = test.wrapper.__dict__  # type: ignore[attr-defined]


_bound: dict[type, type] = {}


def _bound_class(cls: type) -> type:
    if cls not in _bound:

        def shared(name: str) -> property:
            def get(self: Any) -> Any:
                return self._sync_state.get(name)

            def set_(self: Any, value: Any) -> None:
                self._sync_state[name] = value

            return property(get, set_)

        namespace = {
            "needs_rollback": shared("needs_rollback"),
            "rollback_exc": shared("rollback_exc"),
            "run_on_commit": shared("run_on_commit"),
        }
        _bound[cls] = type(f"Test{cls.__name__}", (cls,), namespace)
    return _bound[cls]


# Query logging on SQLite -----------------------------------------------------------------


def quote_params_for_log(original: Any) -> Any:
    """SQLite's last_executed_query quotes parameters with the sync connection; in the
    event loop that connection is never opened, so quote on a private in-memory one."""

    def quote(self: Any, params: Any) -> Any:
        if self.connection.connection is not None:
            return original(self, params)
        # Opened and closed per call (query logging only): one kept per thread would be
        # left unclosed when its thread ends (a ResourceWarning on Python 3.13).
        with contextlib.closing(sqlite3.connect(":memory:")) as connection:
            self.connection.connection = connection
            try:
                return original(self, params)
            finally:
                self.connection.connection = None

    return quote


def destroy_test_db_closing_pools(original: Any) -> Any:
    """Close native connections before Django drops a test database (PostgreSQL refuses
    to drop a database other sessions use)."""

    def destroy_test_db(self: Any, *args: Any, **kwargs: Any) -> Any:
        seam.close_all_now()
        return original(self, *args, **kwargs)

    return destroy_test_db
