"""SQLite through aiosqlite, with Django's own connection set-up (functions, pragmas).

Short statements run on the event loop's thread (``ASYNC["INLINE"]``, on by default):
a trip to aiosqlite's worker thread costs about a hundred times what a one-row
statement does. The rules keep the loop from waiting and the result what the worker
thread would give:

- Nothing runs on the loop while a job of the connection's is still in the worker
  thread (a cancelled task's job runs to its end there), nor on a broken connection.
- Statements on the loop run with the busy timeout at 0 (a lock is refused at once
  instead of waited for) and cache spilling off (dirty pages stay in memory until
  COMMIT writes them, in the worker thread); the first of them sets both, the next
  job in the worker thread puts the project's values back before it runs. SQLite takes
  a statement's locks before it does anything, so a refused statement (SQLITE_BUSY,
  SQLITE_BUSY_RECOVERY) did nothing and runs again in the worker thread, where it
  waits as it always did. Other errors are the statement's own, wherever it runs.
- Reads (``SELECT``, rows fetched at once) run there with a progress handler that stops
  them after about 20,000 steps; an interrupted read-only statement changed nothing
  (SQLite rolls nothing back for it) and runs again in the worker thread.
- One-row ``INSERT ... VALUES`` (no query inside, no upsert), ``SAVEPOINT`` and
  ``RELEASE`` run there inside a transaction the connection began. Writes are never
  interrupted: SQLite would roll back the whole transaction.
- So do ``UPDATE`` and ``DELETE`` statements whose compiled program has no loop: they
  reach at most one row, by its primary key (``save()``, ``update_fields``, TPC-B's
  ``filter(pk=...).update(...)``), with no trigger, no scan of a child table for a
  foreign key, no subquery that scans. SQLite's ``EXPLAIN`` tells, once per statement
  and connection: it compiles the statement without running it, reading nothing of
  the database (so nothing of the package's runs in the user's transaction).
- A statement that took more than 2 ms of CPU there three times in a row (a trigger, a
  costly step the progress handler does not see) goes to the worker thread from then on.
- Everything else goes to the worker thread: COMMIT and ROLLBACK (they write the
  journal to disk), ROLLBACK TO, other UPDATE and DELETE statements, schema changes,
  writes outside a transaction, streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import sqlite3
import threading
import time
from functools import lru_cache, partial
from typing import Any

import aiosqlite
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.sqlite3.base import SQLiteCursorWrapper

from ..connections import in_event_loop, thread_level
from . import base
from .base import Params, Result, Row

logger = logging.getLogger("django_asyncdb.pool")


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


# What may run on the loop's thread (see the module's docstring).
_THREAD, _READ, _INSERT, _SAVEPOINT, _ONE_ROW = 0, 1, 2, 3, 4
# Opcodes of SQLite's virtual machine that step through rows (or run a trigger's
# program): an UPDATE or DELETE compiled without any of them reaches at most one row.
_LOOPING = frozenset(
    {
        "Rewind", "Last", "Next", "Prev", "SorterSort", "SorterNext", "VFilter", "VNext",
        "VUpdate", "Program", "RowSetRead", "InitCoroutine", "Yield", "OpenEphemeral",
        "OpenAutoindex", "SorterOpen",
    }
)  # fmt: skip
_PLANS_KEPT = 500
# A read on the loop is stopped after _READ_CHECKS progress checks of _READ_STEPS
# virtual-machine steps each (tens of microseconds to a few milliseconds of work)
# and runs again in the worker thread.
_READ_STEPS = 1000
_READ_CHECKS = 20
# Errors after which a statement refused on the loop runs again in the worker thread:
# a lock refused before the statement did anything (SQLITE_BUSY, SQLITE_BUSY_RECOVERY).
# Not BUSY_SNAPSHOT (a retry cannot succeed) nor a shared cache's LOCKED (never waited
# for): those are the statement's error wherever it runs.
_RETRY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_BUSY_RECOVERY)
_INTERRUPT = sqlite3.SQLITE_INTERRUPT
# A statement that took longer than this on the loop, in its thread's CPU time (a
# trigger, a costly step the progress handler does not see), three times in a row,
# runs in the worker thread from then on.
_SLOW_SECONDS = 0.002
_SLOW_STRIKES = 3  # times in a row (a garbage collection pause is not the statement's)
_SLOW_KEPT = 1000
_slow: set[str] = set()
_strikes: dict[str, int] = {}


def _slow_again(sql: str) -> None:
    """The statement was slow on the loop; the third time in a row, it goes to the worker
    thread from then on."""
    strikes = _strikes[sql] = _strikes.get(sql, 0) + 1
    if strikes < _SLOW_STRIKES:
        return
    del _strikes[sql]
    if len(_slow) >= _SLOW_KEPT:
        _slow.clear()
    _slow.add(sql)


@lru_cache(maxsize=2048)
def _kind(sql: str) -> int:
    """Where a statement (placeholders converted) may run."""
    text = sql.lstrip().upper()
    if text.startswith("SELECT"):
        return _READ
    if (
        text.startswith("INSERT INTO")
        and " VALUES" in text
        # one row of values, no query inside, no conflict clause (an upsert may update)
        and "), (" not in text
        and "SELECT" not in text
        and " ON CONFLICT" not in text
    ):
        return _INSERT
    if text.startswith(("SAVEPOINT ", "RELEASE ")):  # ROLLBACK TO replays the journal
        return _SAVEPOINT
    if text.startswith(('UPDATE "', 'DELETE FROM "')):  # if its program has no loop
        return _ONE_ROW
    return _THREAD


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


class _Reply:
    """How aiosqlite's thread answers a job of ours: on the job's loop, or not at all if
    that loop closed while the job ran (a task cancelled with its loop: nobody waits).

    aiosqlite answers through ``future.get_loop().call_soon_threadsafe(...)``; on a closed
    loop that raises in its thread, which then dies without closing its sqlite3
    connection (``RuntimeError: Event loop is closed``, then a ResourceWarning).
    """

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future

    def get_loop(self) -> _Reply:
        return self

    def call_soon_threadsafe(self, callback: Any, _reply: Any, value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed
            self.future.get_loop().call_soon_threadsafe(callback, self.future, value)


class SqliteStream(base.Stream):
    """An sqlite3 cursor stepped with fetchmany in the worker thread: rows are produced
    lazily."""

    def __init__(self, connection: SqliteConnection, cursor: sqlite3.Cursor) -> None:
        self.connection = connection
        self.cursor = cursor

    async def fetch(self, size: int) -> list[Row]:
        """Fetch up to ``size`` rows."""
        return list(await self.connection._trip(self.cursor.fetchmany, size))

    async def close(self) -> None:
        """Close the cursor."""
        await self.connection._trip(self.cursor.close)


class SqliteConnection(base.Connection):
    """An aiosqlite connection in autocommit mode (``isolation_level = None``)."""

    driver = sqlite3

    def __init__(
        self, raw: aiosqlite.Connection, begin_sql: str, *, inline: bool, busy_ms: int, spill: int
    ) -> None:
        self.raw = raw
        self.begin_sql = begin_sql
        self.closed = False
        self._stopped = False  # aiosqlite's thread told to end
        self.created = self.last_used = time.monotonic()
        self.inline = inline
        self._restore_busy = f"PRAGMA busy_timeout = {busy_ms}"
        self._restore_spill = f"PRAGMA cache_spill = {spill}"
        # Jobs handed to the worker thread and not finished there (a cancelled task's
        # job still runs): nothing runs on the loop's thread meanwhile.
        self._in_worker = 0
        # Busy timeout 0 and cache spilling off, as statements on the loop need them:
        # set by the first of them, kept while the next ones run there too, and undone
        # by the next job in the worker thread, before it runs.
        self._on_loop_pragmas = False
        # While this connection's own BEGIN is open: True (reset when SQLite says the
        # transaction ended).
        self._began = False
        self._checks = 0
        # UPDATE and DELETE statements: whether one reaches at most one row.
        self._one_row: dict[str, bool] = {}

    async def _trip(self, function: Any, *args: Any) -> Any:
        """Run ``function(*args)`` in aiosqlite's worker thread."""
        raw = self.raw
        queue = getattr(raw, "_tx", None)
        if queue is None:  # another aiosqlite: its public way
            self._in_worker += 1
            return await raw._execute(self._counted, function, *args)
        if not raw._running or not raw._connection:
            raise ValueError("Connection closed")  # as aiosqlite's _execute says it
        future = asyncio.get_running_loop().create_future()
        self._in_worker += 1
        queue.put_nowait((_Reply(future), partial(self._counted, function, *args)))
        return await future

    def _counted(self, function: Any, *args: Any) -> Any:
        try:
            if self._on_loop_pragmas:  # the user's busy timeout and spilling again
                connection = self.raw._conn
                connection.execute(self._restore_busy)
                connection.execute(self._restore_spill)
                self._on_loop_pragmas = False
            return function(*args)
        finally:
            self._in_worker -= 1

    async def fetchall(self, sql: str, params: Params) -> list[Row]:
        """Run a query and return all its rows."""
        return (await self.run(sql, params)).rows

    async def run(self, sql: str, params: Params) -> Result:
        """Run any statement: on the loop's thread when it qualifies, else in one trip to
        aiosqlite's thread (not one per cursor call)."""
        result = self.run_now(sql, params)
        if result is not None:
            return result
        pending, self.pending = self.pending, ""
        try:
            return await self._trip(
                self._run_in_thread, _convert(sql, params), params or (), pending
            )
        except Exception:
            self._ended_unbegun(pending)
            raise

    def run_now(self, sql: str, params: Params) -> Result | None:
        """Run the statement on the loop's thread if the rules allow; None otherwise (and
        a BEGIN that could not be sent stays pending for :meth:`run`)."""
        if not self.inline:
            return None
        pending = self.pending
        try:
            result, self.pending = self._run_on_loop(_convert(sql, params), params or (), pending)
        except Exception:
            self.pending = ""
            self._ended_unbegun(pending)
            raise
        return result

    def _ended_unbegun(self, pending: str) -> None:
        """After a failed statement sent with a pending BEGIN: if BEGIN itself failed (a
        locked database), or SQLite ended the transaction on the error, there is nothing
        to roll back."""
        if pending and not self.raw.in_transaction:
            self.unbegun = True

    def _run_on_loop(self, sql: str, params: Any, begin: str) -> tuple[Result | None, str]:
        """Run the statement here if the rules allow (the module's docstring): its result,
        or None (and the BEGIN still to send) for the worker thread."""
        kind = _kind(sql)
        connection = self.raw._connection
        if (
            kind == _THREAD
            or connection is None
            or self.broken
            or self._in_worker
            or sql in _slow
            or (begin and kind == _SAVEPOINT)
            or (kind != _READ and not begin and not (self._began and connection.in_transaction))
            or (kind == _ONE_ROW and not self._reaches_one_row(connection, sql, params))
        ):
            return None, begin
        if not self._on_loop_pragmas:
            connection.execute("PRAGMA busy_timeout = 0")  # a lock refused at once, never waited
            connection.execute("PRAGMA cache_spill = OFF")  # pages written at COMMIT, not here
            self._on_loop_pragmas = True
        reads = kind == _READ
        started, cpu_started = time.perf_counter(), time.thread_time()
        try:
            if begin:
                try:
                    connection.execute(begin)
                except sqlite3.OperationalError as exc:
                    if getattr(exc, "sqlite_errorcode", None) in _RETRY:
                        return None, begin
                    raise
                self._began = True
                begin = ""
            if reads:
                self._checks = 0
                connection.set_progress_handler(self._progress, _READ_STEPS)
            try:
                return self._execute(connection, sql, params), begin
            except sqlite3.OperationalError as exc:
                code = getattr(exc, "sqlite_errorcode", None)
                if code in _RETRY or (code == _INTERRUPT and self._checks > _READ_CHECKS):
                    return None, begin
                raise
            finally:
                if reads:
                    connection.set_progress_handler(None, 0)
        finally:
            if (
                time.perf_counter() - started > _SLOW_SECONDS
                # its own work, not time the process waited for a core on a busy machine
                and time.thread_time() - cpu_started > _SLOW_SECONDS
            ):
                _slow_again(sql)
            elif _strikes and sql in _strikes:
                del _strikes[sql]

    def _reaches_one_row(self, connection: sqlite3.Connection, sql: str, params: Any) -> bool:
        """Whether the UPDATE or DELETE compiles to a program without a loop (at most
        one row, found by its key; no trigger). Asked once per statement: its program
        changes only with the schema, and a statement that turns slow anyway moves to the
        worker thread by the slow rule."""
        known = self._one_row.get(sql)
        if known is None:
            try:
                opcodes = {row[1] for row in connection.execute("EXPLAIN " + sql, params)}
            except sqlite3.Error:  # its own error, raised where it runs: the worker thread
                opcodes = {"Program"}
            known = not (opcodes & _LOOPING)
            if len(self._one_row) >= _PLANS_KEPT:
                self._one_row.clear()
            self._one_row[sql] = known
        return known

    def _progress(self) -> int:
        """Stop a read on the loop's thread that runs too long (it runs again in the
        worker thread)."""
        self._checks += 1
        return self._checks > _READ_CHECKS

    def _run_in_thread(self, sql: str, params: Any, begin: str = "") -> Result:
        connection = self.raw._conn
        if begin:
            self._begin_in_thread(begin)
        return self._execute(connection, sql, params)

    def _begin_in_thread(self, begin: str) -> None:
        self.raw._conn.execute(begin)
        self._began = True

    def _execute(self, connection: sqlite3.Connection, sql: str, params: Any) -> Result:
        try:
            cursor = connection.execute(sql, params)
            try:
                description = cursor.description
                # Every row now (a RETURNING statement is finished, so a RELEASE after
                # it is not refused).
                rows = cursor.fetchall() if description is not None else []
                return Result(
                    list(description) if description else None,
                    rows,
                    cursor.rowcount,
                    cursor.lastrowid,
                )
            finally:
                cursor.close()
        finally:
            if self._began and not connection.in_transaction:
                self._began = False  # committed, rolled back, or ended by SQLite

    async def open_stream(self, sql: str, params: Params, *, server_side: bool) -> SqliteStream:
        """Start stepping a query (in the worker thread: a stream's size is unknown)."""
        if self.pending:
            await self.begin()
        connection = self.raw._conn
        cursor = await self._trip(connection.execute, _convert(sql, params), params or ())
        return SqliteStream(self, cursor)

    async def begin(self) -> None:
        """BEGIN, with OPTIONS['transaction_mode'] as Django uses it."""
        self.pending = ""
        await self._trip(self._begin_in_thread, self.begin_sql)

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
        """Close the connection and stop its thread. The work is queued at once and runs
        even if this task or its loop ends first (then its answer is dropped)."""
        self.closed = True
        if self._stopped:
            return
        answer = asyncio.get_running_loop().create_future()
        if not self._queue_close(answer):  # another aiosqlite: its public way
            await self.raw.close()
            self._stopped = True
            return
        await answer

    def close_now(self) -> None:
        """Close the sqlite3 connection and end aiosqlite's thread, expecting no reply
        (the loop is gone or ending: a sweep, the exit)."""
        if self._stopped:
            return
        self.closed = True
        self.stop_now()  # a statement of a task that will never resume
        if not self._queue_close(None):  # another aiosqlite: its public way
            self.raw.stop()
            self._stopped = True

    def _queue_close(self, answer: asyncio.Future[Any] | None) -> bool:
        """Queue closing the sqlite3 connection and ending aiosqlite's thread, as
        aiosqlite's close() and stop() do, answered through :class:`_Reply` (or not at
        all); False if this aiosqlite is not the one these internals are known from."""
        raw = self.raw
        queue = getattr(raw, "_tx", None)
        sentinel = getattr(aiosqlite.core, "_STOP_RUNNING_SENTINEL", None)
        if queue is None or sentinel is None:
            return False

        def close_and_stop() -> object:
            connection, raw._connection = raw._connection, None
            if connection is not None:
                try:
                    connection.close()
                except sqlite3.Error:  # the thread must end all the same
                    logger.debug("error closing an SQLite connection", exc_info=True)
            return sentinel

        self._stopped = True
        raw._running = False
        queue.put_nowait((None if answer is None else _Reply(answer), close_and_stop))
        return True


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
        # A task cancelled while aiosqlite's thread opens the connection: aiosqlite drops
        # the connection the thread then returns, unclosed. Whichever side comes second
        # closes it: the connector if the task gave up first, else the task.
        opening = threading.Lock()
        made: list[sqlite3.Connection] = []
        abandoned = False

        def connector() -> sqlite3.Connection:
            # Runs in aiosqlite's own thread, where no event loop runs, so Django's
            # async-safety guard lets its connection set-up through.
            connection: sqlite3.Connection = wrapper.get_new_connection(params)
            try:
                connection.isolation_level = None
                self.max_query_params = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
                # The busy timeout it waits with (Django's OPTIONS["timeout"], or an
                # init_command's PRAGMA), restored after statements run on the loop with 0.
                pragmas.append(connection.execute("PRAGMA busy_timeout").fetchone()[0])
                pragmas.append(connection.execute("PRAGMA cache_spill").fetchone()[0])
            except BaseException:
                connection.close()
                raise
            with opening:
                if not abandoned:
                    made.append(connection)
                    return connection
            connection.close()
            raise sqlite3.OperationalError("the task that opened this connection is gone")

        pragmas: list[int] = []
        raw = aiosqlite.Connection(connector, 64)
        try:
            await raw
        except BaseException:
            with opening:
                abandoned = True
                left = made if raw._connection is None else []
            for connection in left:  # the thread is done with it: nothing else uses it
                connection.close()
            raise
        return SqliteConnection(
            raw, begin_sql, inline=self.settings.inline, busy_ms=pragmas[0], spill=pragmas[1]
        )

    def runs_now(self, sql: str) -> bool:
        """Whether the statement may run on the loop's thread (the rules, as far as the
        statement's text decides them)."""
        return self.settings.inline and _kind(sql) != _THREAD

    def install_facts(self, wrapper: BaseDatabaseWrapper) -> None:
        """Django 6 reads ``features.max_query_params`` from the live sync connection."""
        features = wrapper.features
        if "_asyncdb_max_query_params" not in features.__dict__:
            features.__class__ = _features_with_limits(type(features))
            features._asyncdb_max_query_params = self.max_query_params
