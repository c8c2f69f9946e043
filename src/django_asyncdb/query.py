"""The native read path: Django plans and converts, the seam does the I/O.

Two mechanisms reuse Django's code without copying it:

* **Injection.** To turn rows into objects, the queryset's own iterable class
  (ModelIterable, ValuesIterable, ... with select_related populators and
  converters) runs over rows fetched asynchronously: its ``get_compiler`` call
  receives the compiler we already compiled, whose ``execute_sql`` returns the rows.
* **Replay.** Terminal methods (``get``, ``first``, ``count``, ``in_bulk``, ...)
  run Django's sync method. When it reaches I/O (a queryset evaluation or a
  compiler's ``execute_sql``), it stops with :class:`_NeedIO`; the I/O runs
  natively and the method runs again, now served from the results so far. Django's
  planning before I/O is free of side effects, so a replay repeats it exactly.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from contextlib import aclosing
from contextvars import ContextVar
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models.query import QuerySet, RawQuerySet
from django.db.models.sql.compiler import SQLCompiler
from django.db.models.sql.constants import GET_ITERATOR_CHUNK_SIZE, MULTI, SINGLE
from django.db.models.sql.query import Query

from . import connections as seam
from .backends.base import Row
from .errors import NotSupportedYet, SyncCallInAsyncContext

__all__ = ["afetch_all", "replay"]


class _NeedIO(BaseException):
    """Raised inside Django's sync code at the point where it would do I/O."""

    def __init__(self, target: Any, result_type: str | None = None) -> None:
        super().__init__()
        self.target = target
        self.result_type = result_type


class _Replay:
    """The I/O results gathered so far, served in order to a re-run."""

    __slots__ = ("position", "results")

    def __init__(self, results: list[Any]) -> None:
        self.results = results
        self.position = 0

    def next(self, target: Any, result_type: str | None = None) -> Any:
        if self.position < len(self.results):
            result = self.results[self.position]
            self.position += 1
            return list(result) if result_type is None else _shape(result, result_type)
        raise _NeedIO(target, result_type)


_replaying: ContextVar[_Replay | None] = ContextVar("django_asyncdb_replay", default=None)
# (query, compiler): the compiler ``query.get_compiler()`` must return while
# Django's iterable turns fetched rows into objects.
_prepared: ContextVar[tuple[Query, SQLCompiler] | None] = ContextVar(
    "django_asyncdb_prepared", default=None
)


def replaying() -> bool:
    """True while Django's sync code runs under :func:`replay`."""
    return _replaying.get() is not None


def sync_io_forbidden() -> bool:
    """True where sync I/O would block the event loop (and Django would refuse it)."""
    return (
        seam.in_event_loop()
        and _replaying.get() is None
        and not os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    )


async def replay(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run Django's sync ``func`` with its I/O done natively (see the module docstring)."""
    results: list[Any] = []
    while True:
        state = _Replay(results)
        token = _replaying.set(state)
        try:
            return func(*args, **kwargs)
        except _NeedIO as need:
            pending = need
        finally:
            _replaying.reset(token)
        results.append(await _perform(pending))


async def _perform(need: _NeedIO) -> Any:
    if need.result_type is None:
        queryset: QuerySet[Any] = need.target
        await _check_prefetch(queryset)
        return await _fetch_objects(queryset)
    compiler: SQLCompiler = need.target
    if need.result_type not in (MULTI, SINGLE):
        raise NotSupportedYet(
            f"django_asyncdb does not run {type(compiler).__name__} natively yet "
            f"(result type {need.result_type!r}); the write path comes in a later release."
        )
    alias = compiler.using
    await seam.prepare(alias)
    try:
        sql, params = compiler.as_sql()
        if not sql:
            raise EmptyResultSet
    except EmptyResultSet:
        return None
    if need.result_type == SINGLE:
        row = await seam.fetchone(alias, sql, params)
        return None if row is None else row[: compiler.col_count]
    return _trim(compiler, await seam.fetchall(alias, sql, params))


def _shape(result: list[Row] | None, result_type: str) -> Any:
    """Give a stored compiler result the shape ``execute_sql`` returns."""
    if result_type == SINGLE:
        return result
    return iter([] if result is None else [result])


def _trim(compiler: SQLCompiler, rows: list[Row]) -> list[Row]:
    """Drop extra(select=...) columns past ``col_count``, as Django's cursor_iter does."""
    if getattr(compiler, "has_extra_select", False):
        count = compiler.col_count
        return [row[:count] for row in rows]
    return rows


# Patch targets (installed by patch.py) ----------------------------------------------

_original_fetch_all = QuerySet._fetch_all
_original_execute_sql = SQLCompiler.execute_sql
_original_get_compiler = Query.get_compiler


def fetch_all(self: QuerySet[Any]) -> None:
    """QuerySet._fetch_all: served by the replay, refused in the event loop, else Django's."""
    state = _replaying.get()
    if state is not None and self._result_cache is None:
        self._result_cache = state.next(self)
        self._prefetch_done = True
        return
    if self._result_cache is None and sync_io_forbidden() and seam.is_native(self.db):
        raise SyncCallInAsyncContext(
            f"A {self.model.__name__} queryset was evaluated synchronously in async code. "
            "Use 'async for obj in qs', 'await qs', or the a-methods (aget, afirst, "
            "acount, ...); for a relation, select_related() or prefetch_related()."
        )
    _original_fetch_all(self)


def execute_sql(
    self: SQLCompiler,
    result_type: str = MULTI,
    chunked_fetch: bool = False,
    chunk_size: int = GET_ITERATOR_CHUNK_SIZE,
) -> Any:
    """SQLCompiler.execute_sql: served by the replay, else Django's."""
    state = _replaying.get()
    if state is not None:
        return state.next(self, result_type)
    return _original_execute_sql(self, result_type, chunked_fetch, chunk_size)


def get_compiler(
    self: Query, using: str | None = None, connection: Any = None, elide_empty: bool = True
) -> SQLCompiler:
    """Query.get_compiler: hand Django's iterable the compiler we already ran."""
    prepared = _prepared.get()
    if prepared is not None and prepared[0] is self:
        return prepared[1]
    return _original_get_compiler(self, using, connection, elide_empty)


# Materializing rows ----------------------------------------------------------------


def _materialize(
    queryset: QuerySet[Any],
    compiler: SQLCompiler,
    rows: list[Row],
    *,
    chunked_fetch: bool = False,
    chunk_size: int = GET_ITERATOR_CHUNK_SIZE,
) -> list[Any]:
    """Run the queryset's own iterable class over rows already fetched."""

    def canned(*args: Any, **kwargs: Any) -> Iterator[list[Row]]:
        return iter([rows])

    compiler.execute_sql = canned
    token = _prepared.set((queryset.query, compiler))
    try:
        return list(
            queryset._iterable_class(queryset, chunked_fetch=chunked_fetch, chunk_size=chunk_size)
        )
    finally:
        _prepared.reset(token)


async def _compile(queryset: QuerySet[Any]) -> tuple[SQLCompiler, str, Any] | None:
    """The compiler and SQL of a queryset, or None if it can match nothing."""
    alias = queryset.db
    await seam.prepare(alias)
    compiler = _original_get_compiler(queryset.query, alias)
    try:
        sql, params = compiler.as_sql()
        if not sql:
            raise EmptyResultSet
    except EmptyResultSet:
        return None
    return compiler, sql, params


async def _fetch_objects(queryset: QuerySet[Any]) -> list[Any]:
    compiled = await _compile(queryset)
    if compiled is None:
        return []
    compiler, sql, params = compiled
    rows = await seam.fetchall(queryset.db, sql, params)
    return _materialize(queryset, compiler, _trim(compiler, rows))


async def _check_prefetch(queryset: QuerySet[Any]) -> None:
    if queryset._prefetch_related_lookups and not queryset._prefetch_done:
        raise NotSupportedYet(
            "prefetch_related() does not run natively yet; for now use select_related() "
            "or fetch the related rows with a second query (await Related.objects.filter(...))."
        )


async def afetch_all(queryset: QuerySet[Any]) -> None:
    """Fill the queryset's result cache natively (the async twin of ``_fetch_all``)."""
    if queryset._result_cache is None:
        await _check_prefetch(queryset)
        queryset._result_cache = await _fetch_objects(queryset)
    elif queryset._prefetch_related_lookups and not queryset._prefetch_done:
        await _check_prefetch(queryset)


# QuerySet entry points -------------------------------------------------------------


_originals: dict[str, Any] = {}


def queryset_aiter(self: QuerySet[Any]) -> AsyncIterator[Any]:
    """``async for obj in qs``: one native query, then the result cache."""
    if not seam.is_native(self.db):
        return _originals["__aiter__"](self)

    async def generator() -> AsyncIterator[Any]:
        await afetch_all(self)
        for item in self._result_cache:
            yield item

    return generator()


async def _evaluate(queryset: QuerySet[Any]) -> list[Any]:
    if seam.is_native(queryset.db):
        await afetch_all(queryset)
    else:
        await sync_to_async(queryset._fetch_all)()
    return list(queryset._result_cache)


def queryset_await(self: QuerySet[Any]) -> Generator[Any, None, list[Any]]:
    """``await qs`` evaluates the queryset and returns its results as a list."""
    return _evaluate(self).__await__()


def replayed(name: str) -> Callable[..., Any]:
    """The native ``a<name>`` of QuerySet: Django's sync ``<name>`` under :func:`replay`."""
    sync_method = getattr(QuerySet, name)
    original = getattr(QuerySet, f"a{name}")
    _originals[f"a{name}"] = original

    async def method(self: QuerySet[Any], *args: Any, **kwargs: Any) -> Any:
        alias = self.db
        if not seam.is_native(alias):
            return await original(self, *args, **kwargs)
        await seam.prepare(alias)
        return await replay(sync_method, self, *args, **kwargs)

    method.__name__ = method.__qualname__ = f"a{name}"
    method.__doc__ = f"Native async twin of QuerySet.{name}()."
    return method


# Built once, at import (before install), so the originals recorded are Django's.
REPLAYED = {
    f"a{name}": replayed(name)
    for name in (
        "get",
        "first",
        "last",
        "earliest",
        "latest",
        "count",
        "exists",
        "contains",
        "aggregate",
        "in_bulk",
        "explain",
    )
}


async def aiterator(self: QuerySet[Any], chunk_size: int = 2000) -> AsyncIterator[Any]:
    """Stream results in chunks; a server-side cursor on PostgreSQL."""
    if not seam.is_native(self.db):
        async for item in _originals["aiterator"](self, chunk_size):
            yield item
        return
    if chunk_size <= 0:
        raise ValueError("Chunk size must be strictly positive.")
    if self._prefetch_related_lookups:
        await _check_prefetch(self)
    compiled = await _compile(self)
    if compiled is None:
        return
    compiler, sql, params = compiled
    alias = self.db
    chunked = not connections[alias].settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
    async with aclosing(seam.stream(alias, sql, params, chunk_size)) as chunks:
        async for rows in chunks:
            objects = _materialize(
                self, compiler, _trim(compiler, rows), chunked_fetch=chunked, chunk_size=chunk_size
            )
            for item in objects:
                yield item


# Raw querysets ---------------------------------------------------------------------


class _FetchedCursor:
    """What RawQuery reads from a cursor, holding rows fetched natively."""

    def __init__(self, description: list[Any] | None, rows: list[Row]) -> None:
        self.description = description or []
        self.rows = rows

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def close(self) -> None:
        """Nothing to release: the rows are already here."""


def _raw_params(query: Any, alias: str) -> Any:
    """Adapt raw() parameters as RawQuery._execute_query does."""
    adapter = connections[alias].ops.adapt_unknown_value
    params_type = query.params_type
    if params_type is tuple:
        return tuple(adapter(value) for value in query.params)
    if params_type is dict:
        return {key: adapter(value) for key, value in query.params.items()}
    if params_type is None:
        return None
    raise RuntimeError(f"Unexpected params type: {params_type}")


async def afetch_raw(raw: RawQuerySet[Any]) -> None:
    """Fill a raw queryset's result cache natively, converting rows with Django's code."""
    if raw._result_cache is not None:
        return
    if raw._prefetch_related_lookups:
        await _check_prefetch(raw)
    alias = raw.db
    await seam.prepare(alias)
    result = await seam.run(alias, raw.query.sql, _raw_params(raw.query, alias))
    query = raw.query.chain(alias)
    query.cursor = _FetchedCursor(result.description, result.rows)
    query._execute_query = lambda: None
    clone = raw._clone()
    clone.query = query
    raw._result_cache = list(clone.iterator())


def raw_aiter(self: RawQuerySet[Any]) -> AsyncIterator[Any]:
    """``async for obj in Model.objects.raw(...)``, natively."""
    if not seam.is_native(self.db):
        return _originals["raw__aiter__"](self)

    async def generator() -> AsyncIterator[Any]:
        await afetch_raw(self)
        for item in self._result_cache:
            yield item

    return generator()


def raw_await(self: RawQuerySet[Any]) -> Generator[Any, None, list[Any]]:
    """``await Model.objects.raw(...)`` returns the objects as a list."""

    async def evaluate() -> list[Any]:
        if seam.is_native(self.db):
            await afetch_raw(self)
        else:
            await sync_to_async(self._fetch_all)()
        return list(self._result_cache)

    return evaluate().__await__()


_originals["__aiter__"] = QuerySet.__aiter__
_originals["aiterator"] = QuerySet.aiterator
_originals["raw__aiter__"] = RawQuerySet.__aiter__
