"""Django's connection-level transaction API, routed to the task's async transaction.

``transaction.on_commit()``, ``get_rollback()``, ``set_rollback()`` and the savepoint
functions call these methods on ``connections[alias]``. Inside an async atomic block
they act on that block's :class:`~django_asyncdb.transaction.Transaction`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Callable
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from . import bridge
from . import connections as seam
from .cursors import BridgeCursor
from .errors import SyncCallInAsyncContext, async_twin_hint

logger = logging.getLogger("django.db.backends.base")

_original_on_commit = BaseDatabaseWrapper.on_commit
_original_get_rollback = BaseDatabaseWrapper.get_rollback
_original_set_rollback = BaseDatabaseWrapper.set_rollback
_original_savepoint = BaseDatabaseWrapper.savepoint
_original_savepoint_commit = BaseDatabaseWrapper.savepoint_commit
_original_savepoint_rollback = BaseDatabaseWrapper.savepoint_rollback
_original_get_autocommit = BaseDatabaseWrapper.get_autocommit
_original_ensure_connection = BaseDatabaseWrapper.ensure_connection
_original_cursor = BaseDatabaseWrapper.cursor
_original_close_if_unusable = BaseDatabaseWrapper.close_if_unusable_or_obsolete

# Async callbacks run outside any transaction are tasks; keep them referenced.
_background: set[asyncio.Task[Any]] = set()


def _level(wrapper: BaseDatabaseWrapper) -> seam.Level | None:
    return seam.current_level(wrapper.alias)


def on_commit(self: BaseDatabaseWrapper, func: Callable[[], Any], robust: bool = False) -> None:
    """Register ``func`` on the async transaction, or run it now in async autocommit."""
    level = _level(self)
    if level is None and not (seam.in_event_loop() and seam.is_native(self.alias)):
        _original_on_commit(self, func, robust)
        return
    if not callable(func):
        raise TypeError("on_commit()'s callback must be a callable.")
    if level is not None:
        level.transaction.run_on_commit.append((level.savepoint_ids(), func, robust))
        return
    # No transaction in progress, autocommit: run now, as Django does.
    try:
        result = func()
    except Exception as exc:
        if not robust:
            raise
        name = getattr(func, "__qualname__", func)
        logger.exception("Error calling %s in on_commit() (%s).", name, exc)
        return
    if inspect.isawaitable(result):
        task = asyncio.ensure_future(result)
        _background.add(task)
        task.add_done_callback(_background.discard)


def get_rollback(self: BaseDatabaseWrapper) -> bool:
    """The needs-rollback flag of the innermost async atomic block, or Django's."""
    level = _level(self)
    if level is None:
        return _original_get_rollback(self)
    return level.transaction.needs_rollback


def set_rollback(self: BaseDatabaseWrapper, rollback: bool) -> None:
    """Set the needs-rollback flag of the async transaction, or Django's."""
    level = _level(self)
    if level is None:
        _original_set_rollback(self, rollback)
    else:
        level.transaction.needs_rollback = rollback


def _refuse(name: str) -> SyncCallInAsyncContext:
    return SyncCallInAsyncContext(
        f"transaction.{name}() does I/O and can't run inside an async atomic block; "
        f"use 'await transaction.a{name}(...)' (django_asyncdb)."
    )


def _savepoint_method(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """``savepoint``/``savepoint_commit``/``savepoint_rollback``: native in the bridge;
    refused elsewhere in an async atomic block (the async twin ``a<name>`` is the way)."""

    def method(self: BaseDatabaseWrapper, *args: Any) -> Any:
        if _level(self) is None:
            return original(self, *args)
        if not bridge.serves(self.alias):
            raise _refuse(name)
        from . import transaction

        return bridge.await_(getattr(transaction, f"a{name}")(*args, using=self.alias))

    method.__name__ = method.__qualname__ = name
    return method


savepoint = _savepoint_method("savepoint", _original_savepoint)
savepoint_commit = _savepoint_method("savepoint_commit", _original_savepoint_commit)
savepoint_rollback = _savepoint_method("savepoint_rollback", _original_savepoint_rollback)


def get_autocommit(self: BaseDatabaseWrapper) -> bool:
    """In the event loop, answer for the native side: autocommit unless in an async atomic.

    Django's compiler asks this (select_for_update outside a transaction is an error);
    the sync connection must not be opened from the event loop to answer it.
    """
    if seam.in_event_loop() and seam.is_native(self.alias):
        return _level(self) is None
    if seam.thread_level(self.alias) is not None:
        return False  # a worker thread inside the task's async transaction
    return _original_get_autocommit(self)


def ensure_connection(self: BaseDatabaseWrapper) -> None:
    """Never open the sync connection where statements go through the seam.

    That is the event loop's thread, and a worker thread (Django's own ``sync_to_async``
    hops, a library's) of a task inside an async atomic block of the same database:
    its statements join that transaction through the loop (see ``bridge.await_``)
    rather than run on another connection that would commit on its own.
    """
    if seam.in_event_loop() and seam.is_native(self.alias):
        # This lets CaptureQueriesContext/assertNumQueries run in async tests.
        return
    if seam.thread_level(self.alias) is not None:
        return
    _original_ensure_connection(self)


def close_if_unusable_or_obsolete(self: BaseDatabaseWrapper) -> None:
    """``close_old_connections()`` (Channels runs it before each handler) in a worker
    thread that joined an async block: the thread's own sync connection is not in play
    there (its statements go to the block), so it is left for the next hop outside."""
    if seam.thread_level(self.alias) is not None:
        return
    _original_close_if_unusable(self)


def cursor(self: BaseDatabaseWrapper) -> Any:
    """Inside the bridge (and a worker thread inside an async atomic block), Django's
    cursors run their statements natively."""
    if bridge.serves(self.alias):
        return self._prepare_cursor(BridgeCursor(self.alias))
    if (
        seam.in_event_loop()
        and seam.is_native(self.alias)
        and not os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    ):
        # Django would say "use a thread or sync_to_async"; the native way is the a-method.
        raise SyncCallInAsyncContext(
            "A database query was made synchronously in async code, where it would block "
            f"the event loop.{async_twin_hint()} The async API runs natively: the "
            "a-methods (aget, acreate, acount, aexists, aupdate, adelete, asave, ...), "
            "'async for' over a queryset, and 'async with django_asyncdb.cursor()' for raw SQL."
        )
    return _original_cursor(self)


def chunked_cursor_of(original: Callable[..., Any]) -> Callable[..., Any]:
    """A backend's ``chunked_cursor``: a native cursor inside the bridge (rows are buffered;
    streaming belongs to ``aiterator()``)."""

    def chunked_cursor(self: BaseDatabaseWrapper) -> Any:
        if bridge.serves(self.alias):
            return self._prepare_cursor(BridgeCursor(self.alias))
        return original(self)

    return chunked_cursor


def _routed(name: str) -> property:
    """A wrapper attribute that, for a task inside an async atomic block, is the
    transaction's (Django's code reads and sets ``connection.needs_rollback`` itself)."""

    def get(self: BaseDatabaseWrapper) -> Any:
        level = _level(self)  # the event loop's, or a worker thread's inherited block
        if level is not None:
            return True if name == "in_atomic_block" else getattr(level.transaction, name)
        return self.__dict__.get(name, False if name != "rollback_exc" else None)

    def set_(self: BaseDatabaseWrapper, value: Any) -> None:
        level = _level(self)
        if level is not None:
            if name != "in_atomic_block":
                setattr(level.transaction, name, value)
            return
        self.__dict__[name] = value

    return property(get, set_, doc=f"Django's {name}, or the async transaction's.")


ROUTED_ATTRIBUTES = ("in_atomic_block", "needs_rollback", "rollback_exc")
