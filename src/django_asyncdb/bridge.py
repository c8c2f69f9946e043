"""Run Django's sync ORM code on the native connection, with no thread.

Django's own methods (``get``, ``save``, ``delete``, ``get_or_create``, related
managers, ``prefetch_related_objects``, the deletion ``Collector``, ...) mix planning
with I/O. :func:`run` executes such a method in a greenlet that shares the calling
task's context; wherever Django does I/O (a cursor's ``execute``, a queryset
evaluation, an atomic block), the hooks call :func:`await_`, which suspends the
greenlet, awaits the native coroutine in the task, and resumes Django with the
result. Django's code runs exactly once, in order, signals included; only its I/O
is replaced.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import greenlet

from . import connections as seam

__all__ = ["await_", "in_bridge", "run", "serves", "twin"]

T = TypeVar("T")


class _Bridge(greenlet.greenlet):
    """A greenlet running Django's sync code for a task of the event loop.

    Bridges are reused: creating a greenlet costs several times what a whole switch
    costs, and every native write goes through one. An idle bridge waits in its
    thread's free list for the next job.
    """


class _Outcome:
    """What a bridge hands back when its job is over: the result, or the exception."""

    __slots__ = ("error", "value")

    def __init__(self, value: Any, error: BaseException | None) -> None:
        self.value = value
        self.error = error


_IDLE_LIMIT = 64  # idle bridges kept per thread
_local = threading.local()


def _serve(job: tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]) -> None:
    """The body of every bridge: run jobs, hand each outcome to the task that asked."""
    while True:
        func, args, kwargs = job
        try:
            outcome = _Outcome(func(*args, **kwargs), None)
        except greenlet.GreenletExit:
            raise
        except BaseException as exc:  # the task re-raises it (cancellation included)
            outcome = _Outcome(None, exc)
        del func, args, kwargs
        job = greenlet.getcurrent().parent.switch(outcome)


def in_bridge() -> bool:
    """True inside :func:`run`, where sync ORM code may do native I/O through :func:`await_`."""
    return type(greenlet.getcurrent()) is _Bridge


async def run(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run Django's sync ``func`` with its I/O done natively; return its result."""
    parent = greenlet.getcurrent()
    idle: list[_Bridge] | None = getattr(_local, "idle", None)
    if idle is None:
        idle = _local.idle = []
    if idle:
        child = idle.pop()
        child.parent = parent
    else:
        child = _Bridge(_serve, parent)
    child.gr_context = parent.gr_context  # the greenlet is part of the task: same context
    request = child.switch((func, args, kwargs))
    while type(request) is not _Outcome:
        try:
            value = await request
        except BaseException as exc:  # cancellation included: Django's cleanup runs
            request = child.throw(exc)
        else:
            request = child.switch(value)
    child.gr_context = None  # keep no task's context alive in an idle bridge
    if len(idle) < _IDLE_LIMIT:
        idle.append(child)
    if request.error is not None:
        error, request.error = request.error, None
        try:
            raise error
        finally:
            del error
    return request.value


def serves(alias: str) -> bool:
    """True where Django's sync code does its I/O on ``alias`` natively, through
    :func:`await_`: in the bridge, and in a worker thread (``sync_to_async``) of a task
    inside an async atomic block on ``alias``, whose statements must join that block."""
    if type(greenlet.getcurrent()) is _Bridge:
        return seam.is_native(alias)
    return seam.thread_level(alias) is not None


def await_(awaitable: Awaitable[T]) -> T:
    """From Django's sync code inside :func:`run`: wait for ``awaitable`` in the task.

    In a worker thread of a task inside an async atomic block, the coroutine runs on
    that task's event loop (which is free: the task waits for this thread) and the
    thread waits for it, so the thread's statements run in order on the transaction.
    """
    current = greenlet.getcurrent()
    if type(current) is _Bridge:
        return current.parent.switch(awaitable)
    loop = seam.serving_loop()
    if loop is None or not inspect.iscoroutine(awaitable):
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()
        raise RuntimeError("await_() called outside django_asyncdb's bridge")
    return asyncio.run_coroutine_threadsafe(awaitable, loop).result()


def twin(
    original: Callable[..., Any],
    sync_name: str,
    alias_of: Callable[[Any, dict[str, Any]], str],
    doc: str,
) -> Callable[..., Any]:
    """The native replacement of Django's async method ``original``.

    It runs ``self.<sync_name>`` in the bridge when the database (``alias_of(self,
    kwargs)``) is native, and Django's ``original`` otherwise. Attributes Django sets on
    its method (``alters_data``, ``queryset_only``) are kept.
    """

    @functools.wraps(original)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        alias = alias_of(self, kwargs)
        if not seam.is_native(alias):
            return await original(self, *args, **kwargs)
        await seam.prepare(alias)
        return await run(getattr(self, sync_name), *args, **kwargs)

    method.__doc__ = doc
    return method
