"""The execution seam: every native statement runs through the functions here.

Outside ``atomic`` a statement borrows a pooled autocommit connection and returns
it at once, so ``asyncio.gather`` fans out over several connections. Inside
``atomic`` the connection is bound to the task's context (a ContextVar): tasks
spawned inside inherit it, join the same transaction and take turns on it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorDebugWrapper, debug_transaction
from django.db.transaction import TransactionManagementError

from . import conf, contenttypes
from .backends import backend_for
from .backends.base import Connection, Params, Result, Row, Stream
from .errors import translate
from .pool import Pool

if TYPE_CHECKING:
    from .transaction import Transaction

T = TypeVar("T")

# alias -> innermost atomic level visible to the current task.
_levels: ContextVar[dict[str, Level] | None] = ContextVar("django_asyncdb_levels", default=None)

_no_logging = contextlib.nullcontext()

# Pools by event loop. A loop closed without close_pools() (a test runner's per-test
# loop, a script's asyncio.run) is swept when the next loop starts using pools, and
# at interpreter exit, so drivers' threads never keep the process alive.
_pools: dict[asyncio.AbstractEventLoop, dict[str, Pool]] = {}


class Level:
    """One atomic block as seen by the tasks inside it.

    Statements at this level take turns on the transaction's connection through
    ``lock``. A nested block holds its parent's lock for its whole duration, so the
    savepoint stack on the connection stays linear whatever tasks do.
    """

    __slots__ = ("closed", "lock", "parent", "sid", "test", "token", "transaction")

    def __init__(self, transaction: Transaction, parent: Level | None, sid: str | None) -> None:
        self.transaction = transaction
        self.parent = parent
        self.sid = sid
        self.lock = asyncio.Lock()
        self.closed = False
        self.token: Any = None
        self.test: Any = None  # set on the level standing for a test's transaction

    def savepoint_ids(self) -> set[str | None]:
        """The savepoints this level is inside (an on_commit hook goes if one rolls back)."""
        ids = set()
        level: Level | None = self
        while level is not None:
            ids.add(level.sid)
            level = level.parent
        return ids


def in_event_loop() -> bool:
    """True if an event loop runs in this thread (where Django refuses sync I/O)."""
    return asyncio._get_running_loop() is not None


def is_native(alias: str) -> bool:
    """True if the alias runs on the native async layer."""
    return conf.get(alias) is not None


# alias -> the level standing for an open test transaction (see testing.py).
test_levels: dict[str, Level] = {}


def current_level(alias: str) -> Level | None:
    """The innermost atomic level of ``alias`` in this task's context, if any; in the
    event loop, during a test transaction, the level standing for it."""
    levels = _levels.get()
    level = levels.get(alias) if levels else None
    if level is None and test_levels and in_event_loop():
        return test_levels.get(alias)
    return level


def thread_level(alias: str) -> Level | None:
    """Outside the event loop, the async atomic block of ``alias`` that the context
    inherited: a worker thread (``sync_to_async``) of a task inside that block.

    Such a thread has a Django wrapper of its own: it is given the server facts its
    compiler reads (as prepare() gave the event loop's), so it never connects for them.
    """
    levels = _levels.get()
    if not levels or in_event_loop():
        return None
    level = levels.get(alias)
    if level is not None and level.transaction.pool is not None:
        level.transaction.pool.backend.install_facts(connections[alias])
    return level


def serving_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop of the async transactions this worker thread's context is in."""
    levels = _levels.get()
    if not levels or in_event_loop():
        return None
    loop: asyncio.AbstractEventLoop | None = next(iter(levels.values())).transaction.loop
    return loop


def push_level(alias: str, level: Level) -> None:
    """Make ``level`` the innermost one for ``alias`` in this context."""
    levels = _levels.get()
    level.token = _levels.set({**levels, alias: level} if levels else {alias: level})


def pop_level(level: Level) -> None:
    """Undo :func:`push_level`."""
    _levels.reset(level.token)


def pool(alias: str) -> Pool:
    """The pool of ``alias`` on the running event loop (created on first use)."""
    loop = asyncio.get_running_loop()
    pools = _pools.get(loop)
    if pools is None:
        pools = _pools[loop] = {}
        watch_loop_end(_close_pools_at_loop_end)
    found = pools.get(alias)
    if found is not None and found.generation != _generation:
        pools.pop(alias)
        closing = loop.create_task(found.close())  # settings changed: new connections now
        _closing.add(closing)
        closing.add_done_callback(_closing.discard)
        found = None
    if found is None:
        settings = conf.get(alias)
        if settings is None:
            raise TransactionManagementError(f"Database alias {alias!r} is not native.")
        found = pools[alias] = Pool(backend_for(settings))
        found.generation = _generation
    return found


LoopEnd = Callable[[asyncio.AbstractEventLoop, bool], Awaitable[None]]
# (loop, finish) -> the async generator that runs finish when the loop ends (kept here:
# the loop holds its async generators only weakly).
_watchers: dict[tuple[asyncio.AbstractEventLoop, LoopEnd], AsyncGenerator[None, None]] = {}


async def _at_loop_end(
    loop: asyncio.AbstractEventLoop, finish: LoopEnd
) -> AsyncGenerator[None, None]:
    """An async generator that only ends: ``asyncio.run`` (and asgiref's
    ``async_to_sync``, which runs a loop per call under WSGI) closes every async
    generator of the loop before closing it, so ``finish(loop, running)`` runs then,
    while connections can still be closed properly (``running``: on that loop; False
    when a sweep finishes it after the loop closed)."""
    try:
        yield
    finally:
        _watchers.pop((loop, finish), None)
        await finish(loop, asyncio._get_running_loop() is loop)


def watch_loop_end(finish: LoopEnd) -> None:
    """Have ``finish(loop, running)`` run once when the running loop ends (see
    :func:`_at_loop_end`), or when a sweep finds that loop closed without ending its
    async generators; idempotent per loop and ``finish``."""
    loop = asyncio.get_running_loop()
    if (loop, finish) in _watchers:
        return
    sweep_closed_loops()  # a new loop: forget the ones closed by hand meanwhile
    sentinel = _at_loop_end(loop, finish)
    # Its first step registers it with the running loop's async generator hooks.
    with contextlib.suppress(StopIteration):
        sentinel.asend(None).send(None)
    _watchers[(loop, finish)] = sentinel


def sweep_closed_loops(everything: bool = False) -> None:
    """Run the ``finish`` of loops closed without ending their async generators (every
    watched loop with ``everything``), with ``running`` False."""
    # list(): other threads (a loop per request under WSGI) may add loops meanwhile.
    for key, sentinel in list(_watchers.items()):
        loop = key[0]
        if (everything or loop.is_closed()) and asyncio._get_running_loop() is not loop:
            _watchers.pop(key, None)
            # Finish it here, or the loop it belongs to would be asked to finalize it
            # after it closed.
            with contextlib.suppress(StopIteration, RuntimeError):
                sentinel.aclose().send(None)


async def _close_pools_at_loop_end(loop: asyncio.AbstractEventLoop, running: bool) -> None:
    pools = _pools.pop(loop, None) or {}
    if running:
        for found in pools.values():
            await found.close()
    else:  # finished by a sweep: the loop no longer runs
        for found in pools.values():
            found.abandon()


def close_all_now() -> None:
    """Close every pool's idle connections without awaiting (at exit, before a test
    database is dropped)."""
    sweep_closed_loops(everything=True)
    for loop in list(_pools):  # (those of a loop running in this very thread)
        for found in (_pools.pop(loop, None) or {}).values():
            found.abandon()


# Before the interpreter joins non-daemon threads (aiosqlite's) at exit.
getattr(threading, "_register_atexit", atexit.register)(close_all_now)


_generation = 0
_closing: set[asyncio.Task[None]] = set()


def settings_changed(*, setting: str, **kwargs: Any) -> None:
    """Connections depend on these settings: replace the pools after a change (tests)."""
    global _generation
    if setting in ("DATABASES", "TIME_ZONE", "USE_TZ"):
        _generation += 1


# alias -> (pool, Django's wrapper): the wrappers prepare() readied in this context.
# Django's wrappers live in a context too (asgiref's Local is a ContextVar in async
# code), so a context that has its entry here still has that wrapper, facts included;
# reading this costs a fraction of ``connections[alias]``.
_ready: ContextVar[dict[str, tuple[Pool, BaseDatabaseWrapper]] | None] = ContextVar(
    "django_asyncdb_ready", default=None
)


# alias -> Django's wrapper, shared by the tasks of one request (set by the package's ASGI
# handler for each request). Django keeps a wrapper per context, so each task that
# asyncio.gather() starts before its request touched the database would build its own
# (settings, operations, features, introspection objects: tens of microseconds each);
# Django's own async ORM runs all of a request's queries on one thread's wrapper.
_request_wrappers: ContextVar[dict[str, BaseDatabaseWrapper] | None] = ContextVar(
    "django_asyncdb_request_wrappers", default=None
)


def share_wrappers() -> Token[dict[str, BaseDatabaseWrapper] | None]:
    """From here on, tasks of this context share Django's wrappers (one request)."""
    return _request_wrappers.set({})


def stop_sharing(token: Token[dict[str, BaseDatabaseWrapper] | None]) -> None:
    _request_wrappers.reset(token)


def _wrapper(alias: str) -> BaseDatabaseWrapper:
    """``connections[alias]``, or the request's wrapper if this task has none yet."""
    shared = _request_wrappers.get()
    if shared is None:
        return connections[alias]
    own = getattr(connections._connections, alias, None)  # this context's, if any
    if own is not None:
        return own
    wrapper = shared.get(alias)
    if wrapper is None:
        wrapper = shared[alias] = connections[alias]
    else:
        connections[alias] = wrapper  # Django's compiler looks it up in this context
    return wrapper


async def prepare(alias: str) -> BaseDatabaseWrapper:
    """Open the pool if needed and give Django's wrapper the facts its compiler reads."""
    found = pool(alias)
    ready = _ready.get()
    entry = ready.get(alias) if ready else None
    if entry is not None and entry[0] is found and not contenttypes.needs_warming(alias):
        return entry[1]  # the common case: everything below was done in this context
    wrapper = _wrapper(alias)
    opened = found._opened
    if opened is None or not opened.done():
        await found.open()
    found.backend.install_facts(wrapper)
    if contenttypes.needs_warming(alias) and current_level(alias) is None:
        await contenttypes.warm(alias)  # outside any transaction: see contenttypes.py
    _ready.set({**ready, alias: (found, wrapper)} if ready else {alias: (found, wrapper)})
    return wrapper


async def close_pools(*aliases: str) -> None:
    """Close the pools of the running event loop (all aliases, or those named).

    Call it on ASGI lifespan shutdown and at the end of tests.
    """
    pools = _pools.get(asyncio.get_running_loop())
    if not pools:
        return
    for alias in aliases or tuple(pools):
        found = pools.pop(alias, None)
        if found is not None:
            await found.close()


class _Unsent:
    """A statement that failed before the driver recorded it: logged as written."""

    __slots__ = ("query",)

    def __init__(self, sql: str) -> None:
        self.query = sql.encode()


class _LogCursor:
    """What Django's query logging reads from a cursor after a statement: the statement
    as sent (``_query`` for PostgreSQL, ``_executed`` for MySQL)."""

    __slots__ = ("_query",)

    def __init__(self, sql: str) -> None:
        self._query: Any = _Unsent(sql)

    @property
    def _executed(self) -> Any:
        query = self._query
        return query.query if isinstance(query, _Unsent) else query


def _logging(
    alias: str, sql: str, params: Params, wrapper: BaseDatabaseWrapper | None = None
) -> tuple[Any, _LogCursor | None]:
    """Django's own statement logging (connection.queries, django.db.backends) when on."""
    wrapper = wrapper or connections[alias]
    if not wrapper.queries_logged:
        return _no_logging, None
    holder = _LogCursor(sql)
    return CursorDebugWrapper(holder, wrapper).debug_sql(
        sql, params, use_last_executed_query=True
    ), holder


class driver_errors:
    """Around driver calls: driver errors become Django's; an interruption (a cancelled
    task) marks the connection broken, so it is never reused mid-statement."""

    __slots__ = ("connection",)

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is None or exc_type is GeneratorExit:  # GeneratorExit: a closed stream
            return
        if issubclass(exc_type, Exception):
            error = translate(exc, self.connection.driver)
            if error is not None:
                error.sent = self.connection.failed_query()
                raise error from exc
            return
        self.connection.interrupt()


async def _on_connection(alias: str, operation: Callable[[Connection], Awaitable[T]]) -> T:
    """Run ``operation`` on the transaction's connection, or on a pooled one."""
    level = current_level(alias)
    if level is None:
        found = pool(alias)
        connection = found.take() or await found.acquire()
        try:
            with driver_errors(connection):
                return await operation(connection)
        finally:
            found.release(connection)
    async with level.lock:
        transaction = level.transaction
        transaction.check_usable(level)
        connection = transaction.connection
        with driver_errors(connection):
            return await operation(connection)


def run_now(alias: str, sql: str, params: Params) -> Result | None:
    """Run a statement at once, without awaiting, where the connection can (SQLite's
    statements on the loop's thread: ``ASYNC["INLINE"]``); None: await :func:`run`.

    Only when the connection is free for it now: a pooled one ready at once, or the
    transaction's with no other task using it or waiting for it (their turns keep
    their order).
    """
    settings = conf.get(alias)
    if settings is None or not settings.inline or not in_event_loop():
        return None  # (a worker thread of a task in an async block awaits on the loop)
    found = pool(alias)
    if not found.backend.runs_now(sql):
        return None
    level = current_level(alias)
    if level is None:
        connection = found.take()
        if connection is None:
            return None
        try:
            with driver_errors(connection):
                return connection.run_now(sql, params)
        finally:
            found.release(connection)
    lock = level.lock
    if lock.locked() or lock._waiters:
        return None
    transaction = level.transaction
    transaction.check_usable(level)
    connection = transaction.connection
    with driver_errors(connection):
        return connection.run_now(sql, params)


async def fetchall(
    alias: str, sql: str, params: Params, wrapper: BaseDatabaseWrapper | None = None
) -> list[Row]:
    """Run a query and return all rows (``wrapper``: Django's for ``alias``, if at hand)."""
    if (wrapper or connections[alias]).queries_logged:
        return (await run(alias, sql, params)).rows
    result = run_now(alias, sql, params)
    if result is not None:
        return result.rows
    return await _on_connection(alias, lambda c: c.fetchall(sql, params))


async def run(
    alias: str,
    sql: str,
    params: Params,
    *,
    logged: bool = True,
    wrapper: BaseDatabaseWrapper | None = None,
    now: bool = True,
) -> Result:
    """Run any statement; return description, rows, row count and last row id.

    ``logged=False`` for statements Django's own cursor wrapper already logs;
    ``wrapper``: Django's for ``alias``, if at hand; ``now=False`` where the caller
    already tried :func:`run_now`.
    """
    log, holder = _logging(alias, sql, params, wrapper) if logged else (_no_logging, None)
    with log:
        result = run_now(alias, sql, params) if now else None
        if result is None:
            result = await _on_connection(alias, lambda c: c.run(sql, params))
        if holder is not None and result.query is not None:
            holder._query = result.query
    return result


async def stream(
    alias: str, sql: str, params: Params, chunk_size: int
) -> AsyncGenerator[list[Row], None]:
    """Yield a query's rows in chunks of ``chunk_size``.

    On PostgreSQL the rows come from a server-side cursor (unless
    DISABLE_SERVER_SIDE_CURSORS), so memory stays flat whatever the result size.
    Inside a transaction each chunk takes its turn on the shared connection, so the
    consumer may run other queries between chunks.
    """
    level = current_level(alias)
    found = pool(alias)
    backend = found.backend
    server_side = backend.use_server_side_cursors()
    if level is not None:
        chunks = _stream_in_transaction(level, alias, sql, params, chunk_size, backend)
        async with contextlib.aclosing(chunks):
            async for rows in chunks:
                yield rows
        return
    connection = await found.acquire()
    try:
        in_transaction = server_side and backend.stream_needs_transaction
        cursor: Stream | None = None
        try:
            with driver_errors(connection):
                if in_transaction:
                    await connection.begin()
                with _logging(alias, sql, params)[0]:
                    cursor = await connection.open_stream(sql, params, server_side=server_side)
            while True:
                assert cursor is not None
                with driver_errors(connection):
                    rows = await cursor.fetch(chunk_size)
                if not rows:
                    break
                yield rows
        except BaseException:
            # An error, a cancellation, or a consumer that stopped early (GeneratorExit):
            # end the stream without replacing what happened.
            await _end_stream(connection, cursor, in_transaction)
            raise
        with driver_errors(connection):
            await cursor.close()
            if in_transaction:
                await connection.commit()
    finally:
        found.release(connection)


async def _stream_in_transaction(
    level: Level, alias: str, sql: str, params: Params, chunk_size: int, backend: Any
) -> AsyncGenerator[list[Row], None]:
    """A stream on the transaction's connection, each chunk taking its turn on it."""
    server_side = backend.use_server_side_cursors() and not backend.streams_only_alone
    log, _ = _logging(alias, sql, params)
    async with level.lock:
        level.transaction.check_usable(level)
        connection = level.transaction.connection
        with driver_errors(connection), log:
            cursor = await connection.open_stream(sql, params, server_side=server_side)
    try:
        while True:
            async with level.lock:
                level.transaction.check_usable(level)
                with driver_errors(connection):
                    rows = await cursor.fetch(chunk_size)
            if not rows:
                break
            yield rows
    except BaseException:
        if not level.closed:
            async with level.lock:
                await _end_stream(connection, cursor, False)
        raise
    async with level.lock:
        with driver_errors(connection):
            await cursor.close()


async def _end_stream(connection: Connection, cursor: Stream | None, rollback: bool) -> None:
    """Close a stream that ended in an error, a cancellation or early; never raises, so
    the exception under way is the one reported. Its own transaction is rolled back
    (which also drops a server-side cursor). A connection this fails on is not reused."""
    if connection.broken:  # interrupted: the pool stops the statement and closes it
        return
    try:
        if rollback:
            await connection.rollback()
        if cursor is not None:
            await cursor.close()
    except BaseException as exc:
        connection.broken = True
        if not isinstance(exc, Exception):
            raise


def log_transaction_statement(alias: str, sql: str) -> Any:
    """Django's logging of BEGIN/COMMIT/ROLLBACK (a context manager)."""
    return debug_transaction(connections[alias], sql)


def default_alias(using: str | None) -> str:
    """Django's default alias when none is given."""
    return using or DEFAULT_DB_ALIAS
