"""Async ``transaction.atomic``: the same semantics as Django's, on the native connection.

``async with transaction.atomic():`` and ``@transaction.atomic`` on an ``async def``
work with Django's own import. The state Django keeps on its connection
(``savepoint_ids``, ``needs_rollback``, ``run_on_commit``) lives on a
:class:`Transaction` bound to the task's context instead.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, DatabaseError, Error, OperationalError, connections
from django.db import transaction as django_transaction
from django.db.transaction import Atomic, TransactionManagementError

from . import bridge, testing
from . import connections as seam
from .backends.base import Connection
from .connections import Level
from .errors import SyncCallInAsyncContext, async_twin_hint
from .pool import Pool

__all__ = [
    "Transaction",
    "asavepoint",
    "asavepoint_commit",
    "asavepoint_create",
    "asavepoint_rollback",
]

logger = logging.getLogger("django.db.backends.base")

Hook = tuple[set[str | None], Callable[[], Any], bool]


class Transaction:
    """One outermost async atomic block: its connection and Django's bookkeeping."""

    def __init__(self, alias: str, pool: Pool | None, connection: Connection) -> None:
        self.loop = asyncio._get_running_loop()  # where worker threads send statements
        self.alias = alias
        self.pool = pool
        self.connection = connection
        self.savepoint_ids: list[str | None] = []
        self.needs_rollback = False
        self.rollback_exc: BaseException | None = None
        self.run_on_commit: list[Hook] = []
        self._savepoint_count = 0

    def check_usable(self, level: Level) -> None:
        """Refuse statements after the block ended or once it must roll back (as Django)."""
        if level.closed:
            raise TransactionManagementError(
                "This atomic block has ended; a task that outlived it can't use its connection. "
                "Await the tasks a block starts before it ends (asyncio.gather, a TaskGroup)."
            )
        if self.needs_rollback:
            raise TransactionManagementError(
                "An error occurred in the current transaction. You can't "
                "execute queries until the end of the 'atomic' block."
            ) from self.rollback_exc
        self.check_connection()

    def check_connection(self) -> None:
        """Refuse statements once one was interrupted: the connection is being stopped."""
        if self.connection.broken:
            raise OperationalError(
                "A statement of this transaction was interrupted (its task was cancelled or "
                "timed out); the transaction can't go on and rolls back at the end of the "
                "'atomic' block."
            )

    async def execute(self, sql: str | None) -> None:
        """Run a transaction-control statement (None: BEGIN); an interrupted one breaks the
        connection."""
        connection = self.connection
        with (
            seam.driver_errors(connection),
            seam.log_transaction_statement(self.alias, sql or "BEGIN"),
        ):
            if sql is None:
                await connection.begin_with_next()
            elif sql in ("COMMIT", "ROLLBACK") and connection.end_unbegun():
                return  # no statement ran: the server has no transaction to end
            else:
                await connection.run(sql, None)

    def new_savepoint_id(self) -> str:
        """A savepoint name unique within this transaction."""
        self._savepoint_count += 1
        return f"adb_s{self._savepoint_count}"

    async def savepoint(self) -> str:
        """Create a savepoint and return its id."""
        sid = self.new_savepoint_id()
        await self.execute(connections[self.alias].ops.savepoint_create_sql(sid))
        return sid

    async def savepoint_commit(self, sid: str) -> None:
        """Release a savepoint."""
        await self.execute(connections[self.alias].ops.savepoint_commit_sql(sid))

    async def savepoint_rollback(self, sid: str) -> None:
        """Roll back to a savepoint and forget the hooks registered since."""
        await self.execute(connections[self.alias].ops.savepoint_rollback_sql(sid))
        self.run_on_commit = [hook for hook in self.run_on_commit if sid not in hook[0]]

    async def close_nested(self, sid: str | None, success: bool) -> None:
        """Leave a nested block: release or roll back its savepoint (Django's rules)."""
        if self.connection.broken:
            self.needs_rollback = True
        elif success and not self.needs_rollback:
            if sid is not None:
                try:
                    await self.savepoint_commit(sid)
                except DatabaseError:
                    try:
                        await self.savepoint_rollback(sid)
                        await self.savepoint_commit(sid)
                    except Error:
                        self.needs_rollback = True
                    raise
        else:
            # Set again below if no savepoint allows a rollback at this level.
            self.needs_rollback = False
            if sid is None:
                self.needs_rollback = True
            else:
                try:
                    await self.savepoint_rollback(sid)
                    await self.savepoint_commit(sid)
                except Error:
                    self.needs_rollback = True

    async def close_outermost(self, success: bool) -> bool:
        """Commit or roll back; return True if committed. The caller releases the connection."""
        connection = self.connection
        if connection.broken:
            self.run_on_commit = []
            if success:
                raise OperationalError(
                    "The connection broke inside the atomic block; the transaction was "
                    "rolled back by the server."
                )
            return False
        if success and not self.needs_rollback:
            try:
                await self.execute("COMMIT")
            except DatabaseError:
                self.run_on_commit = []
                try:
                    await self.execute("ROLLBACK")
                except Error:
                    connection.broken = True
                raise
            return True
        self.needs_rollback = False
        self.run_on_commit = []
        try:
            await self.execute("ROLLBACK")
        except Error:
            connection.broken = True
        return False

    async def run_commit_hooks(self) -> None:
        """Run on_commit callbacks in order; await the async ones (Django's robust rules)."""
        hooks, self.run_on_commit = self.run_on_commit, []
        while hooks:
            _, func, robust = hooks.pop(0)
            if robust:
                try:
                    await _call(func)
                except Exception as exc:
                    name = getattr(func, "__qualname__", func)
                    logger.exception(
                        "Error calling %s in on_commit() during transaction (%s).", name, exc
                    )
            else:
                await _call(func)


async def _call(func: Callable[[], Any]) -> None:
    result = func()
    if inspect.isawaitable(result):
        await result


def _alias(atomic: Atomic) -> str:
    return atomic.using or DEFAULT_DB_ALIAS


async def atomic_aenter(self: Atomic) -> Atomic:
    """``async with transaction.atomic()``: begin, or create a savepoint when nested."""
    alias = _alias(self)
    if not seam.is_native(alias):
        await sync_to_async(self.__enter__)()
        return self
    seam.push_level(alias, await _open_level(self, alias, seam.current_level(alias)))
    return self


async def _open_level(self: Atomic, alias: str, parent: Level | None) -> Level:
    """The I/O of entering a block (BEGIN, or a savepoint under the parent's turn)."""
    if parent is None:
        await seam.prepare(alias)
        pool = seam.pool(alias)
        connection = await pool.acquire()
        transaction = Transaction(alias, pool, connection)
        try:
            await transaction.execute(None)
        except BaseException:
            pool.release(connection)
            raise
        return Level(transaction, None, None)
    if self.durable and not (parent.test is not None and parent.parent is None):
        raise RuntimeError("A durable atomic block cannot be nested within another atomic block.")
    # Hold the parent's turn for the whole block: the savepoint stack stays linear.
    await parent.lock.acquire()
    try:
        transaction = parent.transaction
        if parent.closed:
            transaction.check_usable(parent)
        transaction.check_connection()
        if self.savepoint and not transaction.needs_rollback:
            sid: str | None = await transaction.savepoint()
        else:
            sid = None
    except BaseException:
        parent.lock.release()
        raise
    transaction.savepoint_ids.append(sid)
    return Level(transaction, parent, sid)


async def atomic_aexit(self: Atomic, exc_type: Any, exc_value: Any, traceback: Any) -> None:
    """Leave the block: release/roll back the savepoint, or commit/roll back and run hooks."""
    alias = _alias(self)
    if not seam.is_native(alias):
        await sync_to_async(self.__exit__)(exc_type, exc_value, traceback)
        return
    level = seam.current_level(alias)
    if level is None:
        if exc_type is GeneratorExit:
            # A coroutine closed by the garbage collector (its loop closed with it still
            # pending): no task context to find the block in; the pool closes its
            # connection with the loop.
            return
        raise TransactionManagementError("atomic block exited in another task than it entered.")
    seam.pop_level(level)
    await _close_level(level, exc_type is None)


async def _close_level(level: Level, success: bool) -> None:
    """The I/O of leaving a block: release or roll back its savepoint, or commit or roll
    back the transaction and run its on_commit hooks."""
    level.closed = True
    transaction = level.transaction
    if level.parent is not None:
        try:
            await transaction.close_nested(level.sid, success)
        finally:
            transaction.savepoint_ids.pop()
            level.parent.lock.release()
        return
    try:
        committed = await transaction.close_outermost(success)
    finally:
        assert transaction.pool is not None  # only a test's transaction has none
        transaction.pool.release(transaction.connection)
    if committed:
        await transaction.run_commit_hooks()


_original_call = Atomic.__call__
_original_enter = Atomic.__enter__
_original_exit = Atomic.__exit__


def atomic_call(self: Atomic, func: Callable[..., Any]) -> Callable[..., Any]:
    """``@transaction.atomic`` on an ``async def`` wraps it in ``async with``."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def inner(*args: Any, **kwargs: Any) -> Any:
            async with self._recreate_cm():
                return await func(*args, **kwargs)

        return inner
    return _original_call(self, func)


def atomic_enter(self: Atomic) -> None:
    """Native in the bridge, and in a worker thread of a task inside an async atomic
    block (a savepoint of it); refused on a native alias elsewhere in the event loop."""
    alias = _alias(self)
    if seam.in_event_loop() and seam.is_native(alias):
        if bridge.in_bridge():
            bridge.await_(atomic_aenter(self))
            return
        hint = async_twin_hint()  # Django's own delete()/bulk_create() open a block
        raise SyncCallInAsyncContext(
            hint.strip()
            if hint
            else "'with transaction.atomic()' blocks the event loop; in async code use "
            "'async with transaction.atomic()' (django_asyncdb)."
        )
    parent = seam.thread_level(alias)
    if parent is not None:
        # The savepoint is made on the loop; the block is pushed in this thread's context.
        seam.push_level(alias, bridge.await_(_open_level(self, alias, parent)))
        return
    _original_enter(self)
    if getattr(self, "_from_testcase", False):
        testing.enter(alias, connections[alias])


def atomic_exit(self: Atomic, exc_type: Any, exc_value: Any, traceback: Any) -> None:
    """Leave a block entered natively (in the bridge or a worker thread); otherwise
    Django's ``__exit__``."""
    alias = _alias(self)
    if bridge.in_bridge() and seam.is_native(alias):
        bridge.await_(atomic_aexit(self, exc_type, exc_value, traceback))
        return
    level = seam.thread_level(alias)
    if level is not None:
        seam.pop_level(level)
        bridge.await_(_close_level(level, exc_type is None))
        return
    if getattr(self, "_from_testcase", False):
        testing.exit(alias)
    _original_exit(self, exc_type, exc_value, traceback)


def _level_for_savepoints(using: str | None) -> Level | None:
    return seam.current_level(using or DEFAULT_DB_ALIAS)


async def asavepoint(using: str | None = None) -> str | None:
    """Async twin of ``transaction.savepoint()``: None outside a transaction, as Django."""
    if not seam.is_native(using or DEFAULT_DB_ALIAS):  # Django's, in the block's thread
        # Django 6.1 renamed savepoint() to savepoint_create() (the old name warns).
        create = getattr(django_transaction, "savepoint_create", None)
        return await sync_to_async(create or django_transaction.savepoint)(using)
    level = _level_for_savepoints(using)
    if level is None:
        return None
    async with level.lock:
        level.transaction.check_usable(level)
        return await level.transaction.savepoint()


# Django 6.1 renamed savepoint() to savepoint_create(); both names have an async twin.
asavepoint_create = asavepoint


async def asavepoint_commit(sid: str | None, using: str | None = None) -> None:
    """Async twin of ``transaction.savepoint_commit(sid)``."""
    if not seam.is_native(using or DEFAULT_DB_ALIAS):
        await sync_to_async(django_transaction.savepoint_commit)(sid, using)
        return
    await _on_savepoint(using, sid, Transaction.savepoint_commit)


async def asavepoint_rollback(sid: str | None, using: str | None = None) -> None:
    """Async twin of ``transaction.savepoint_rollback(sid)``."""
    if not seam.is_native(using or DEFAULT_DB_ALIAS):
        await sync_to_async(django_transaction.savepoint_rollback)(sid, using)
        return
    await _on_savepoint(using, sid, Transaction.savepoint_rollback)


async def _on_savepoint(
    using: str | None, sid: str | None, action: Callable[[Transaction, str], Any]
) -> None:
    level = _level_for_savepoints(using)
    if level is None or sid is None:  # no transaction: nothing to do, as in Django
        return
    async with level.lock:
        level.transaction.check_usable(level)
        await action(level.transaction, sid)
