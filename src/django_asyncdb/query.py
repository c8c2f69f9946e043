"""The native read path, and the QuerySet entry points that run Django's own methods.

* **Evaluation.** A queryset is compiled by Django's compiler, its rows fetched
  natively, and then its own iterable class (ModelIterable, ValuesIterable, ... with
  select_related populators and converters) turns them into objects: its
  ``get_compiler`` call receives the compiler we already ran, whose ``execute_sql``
  returns the rows.
* **Methods.** ``aget``, ``acount``, ``acreate``, ``aget_or_create``, ``adelete``, ...
  run Django's sync twin in the :mod:`~django_asyncdb.bridge`, where every queryset
  evaluation and cursor statement is done natively.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from contextlib import aclosing
from contextvars import ContextVar
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import EmptyResultSet
from django.db import connections, router
from django.db.models.query import QuerySet, RawQuerySet, prefetch_related_objects
from django.db.models.sql.compiler import SQLCompiler
from django.db.models.sql.constants import GET_ITERATOR_CHUNK_SIZE
from django.db.models.sql.query import Query

from . import bridge, counts, deletes, learned, reads, shapes
from . import connections as seam
from .backends.base import Row
from .errors import SyncCallInAsyncContext, async_twin_hint

__all__ = ["afetch_all", "aprefetch_related_objects"]


# (query, compiler): the compiler ``query.get_compiler()`` must return while
# Django's iterable turns fetched rows into objects.
_prepared: ContextVar[tuple[Query, SQLCompiler] | None] = ContextVar(
    "django_asyncdb_prepared", default=None
)


def sync_io_forbidden() -> bool:
    """True where sync I/O would block the event loop (and Django would refuse it)."""
    return (
        seam.in_event_loop()
        and not bridge.in_bridge()
        and not os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    )


def _trim(compiler: SQLCompiler, rows: list[Row]) -> list[Row]:
    """Drop extra(select=...) columns past ``col_count``, as Django's cursor_iter does."""
    if getattr(compiler, "has_extra_select", False):
        count = compiler.col_count
        return [row[:count] for row in rows]
    return rows


# Patch targets (installed by patch.py) ----------------------------------------------

_original_fetch_all = QuerySet._fetch_all
_original_get_compiler = Query.get_compiler


def fetch_all(self: QuerySet[Any]) -> None:
    """QuerySet._fetch_all: native inside the bridge, refused in the event loop, else Django's."""
    if self._result_cache is None:
        if bridge.serves(self.db):
            self._result_cache = bridge.await_(_fetch_objects(self))
        elif sync_io_forbidden() and seam.is_native(self.db):
            raise SyncCallInAsyncContext(
                f"A queryset of {self.model.__name__} was evaluated synchronously in async "
                f"code.{async_twin_hint()} Use 'async for obj in qs' ('[obj async for obj in "
                "qs]' for a list) or the a-methods (aget, afirst, acount, ...); for a relation, "
                "select_related() or prefetch_related()."
            )
    _original_fetch_all(self)  # with the cache filled, only prefetch_related work remains


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
    # A shape seen before runs the SQL Django wrote for it (reads.py), unless a get()
    # is learning its own shape from this evaluation (shapes.py records Django's).
    found = None if shapes.learning() else reads.key_of(queryset)
    known = None
    if found is not None:
        key, lookups = found
        alias = key[1]
        wrapper = await seam.prepare(alias)
        known = reads.shapes_of(wrapper)
        if key in known:
            shape = known[key]
            known = None  # (nothing to learn)
            if shape is not None:
                compiler = learned.bound(shape.compiler, wrapper)
                params = reads.params_of(shape, lookups, compiler)
                if params is not None:
                    sql = reads.sql_of(shape, queryset, wrapper)
                    rows = await seam.fetchall(alias, sql, params, wrapper)
                    return _materialize(queryset, compiler, _trim(compiler, rows))
    compiled = await _compile(queryset)
    if compiled is None:
        return []
    compiler, sql, params = compiled
    if known is not None and found is not None:
        known[found[0]] = reads.learn(compiler, sql, params, found[1])
    shapes.record(compiler, sql, params)
    rows = await seam.fetchall(queryset.db, sql, params, compiler.connection)
    return _materialize(queryset, compiler, _trim(compiler, rows))


async def afetch_all(queryset: QuerySet[Any]) -> None:
    """Fill the queryset's result cache natively (the async twin of ``_fetch_all``)."""
    if queryset._result_cache is None:
        queryset._result_cache = await _fetch_objects(queryset)
    if queryset._prefetch_related_lookups and not queryset._prefetch_done:
        # Django's prefetching (as _fetch_all runs it after the rows), with native I/O.
        await bridge.run(queryset._prefetch_related_objects)


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


def _write_alias(queryset: QuerySet[Any], kwargs: dict[str, Any]) -> str:
    return queryset._db or router.db_for_write(queryset.model, **queryset._hints)


def _read_alias(queryset: QuerySet[Any], kwargs: dict[str, Any]) -> str:
    return queryset.db


def bridged(name: str, *, write: bool = False) -> Callable[..., Any]:
    """The native ``a<name>`` of QuerySet: Django's sync ``<name>`` run in the bridge."""
    original = getattr(QuerySet, f"a{name}")
    alias_of = _write_alias if write else _read_alias
    return bridge.twin(original, name, alias_of, f"Native async twin of QuerySet.{name}().")


_READS = (
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
_WRITES = (
    "create",
    "bulk_create",
    "bulk_update",
    "update",
    "delete",
    "get_or_create",
    "update_or_create",
)
_aget_in_bridge = bridged("get")


@functools.wraps(QuerySet.aget)
async def aget(self: QuerySet[Any], *args: Any, **kwargs: Any) -> Any:
    """Native async twin of QuerySet.get(), with the statements of repeated shapes
    cached (see :mod:`~django_asyncdb.shapes`)."""
    items = sorted(kwargs.items())  # the order Django's Q() gives the lookups
    key = None if args else shapes.shape_key(self, items)
    if key is None or not seam.is_native(key[1]):
        return await _aget_in_bridge(self, *args, **kwargs)
    alias = key[1]
    wrapper = await seam.prepare(alias)
    known = shapes.shapes_of(wrapper)
    if key in known:
        shape = known[key]
        if shape is not None:
            compiler = learned.bound(shape.compiler, wrapper)
            params = shapes.lookup_params(shape, items, compiler)
            if params is not None:
                rows = await seam.fetchall(alias, shape.sql, params, wrapper)
                if len(rows) == 1:  # otherwise Django's get() raises its own error
                    found = _materialize(self, compiler, _trim(compiler, rows))
                    if self._prefetch_related_lookups:  # as Django's get() does, natively
                        await aprefetch_related_objects(found, *self._prefetch_related_lookups)
                    return found[0]
        return await bridge.run(self.get, **kwargs)
    with shapes.capturing() as captured:
        try:
            return await bridge.run(self.get, **kwargs)
        finally:
            if captured:
                known[key] = shapes.learn(key, items, captured)


# Built once, at import (before install), so the originals recorded are Django's.
METHODS = (
    {"aget": aget}
    | {f"a{name}": bridged(name) for name in _READS}
    | {f"a{name}": bridged(name, write=True) for name in _WRITES}
    | {"adelete": deletes.native_adelete(bridged("delete", write=True), _write_alias)}
    | {f"a{kind}": counts.native(kind, bridged(kind)) for kind in ("count", "exists")}
)


async def aiterator(self: QuerySet[Any], chunk_size: int = 2000) -> AsyncIterator[Any]:
    """Stream results in chunks; a server-side cursor on PostgreSQL."""
    if not seam.is_native(self.db):
        async for item in _originals["aiterator"](self, chunk_size):
            yield item
        return
    if chunk_size <= 0:
        raise ValueError("Chunk size must be strictly positive.")
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
            if self._prefetch_related_lookups:  # per chunk, as Django's aiterator does
                await bridge.run(prefetch_related_objects, objects, *self._prefetch_related_lookups)
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
    alias = raw.db
    wrapper = await seam.prepare(alias)
    result = await seam.run(alias, raw.query.sql, _raw_params(raw.query, alias), wrapper=wrapper)
    query = raw.query.chain(alias)
    query.cursor = _FetchedCursor(result.description, result.rows)
    query._execute_query = lambda: None
    clone = raw._clone()
    clone.query = query
    raw._result_cache = list(clone.iterator())
    if raw._prefetch_related_lookups and not raw._prefetch_done:
        await bridge.run(raw._prefetch_related_objects)


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


async def aprefetch_related_objects(model_instances: Any, *related_lookups: Any) -> None:
    """Native ``aprefetch_related_objects``: Django's prefetching with native I/O."""
    await bridge.run(prefetch_related_objects, model_instances, *related_lookups)
