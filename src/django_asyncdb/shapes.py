"""Statements learned from Django for repeated ``get()`` shapes.

``await Model.objects.aget(pk=1)`` spends most of its CPU time in Django building
the filtered clone and compiling it to SQL, and that work is the same for every
call of the same shape. The first call of a shape runs Django's own ``get()``
(in the bridge) and this module keeps what Django produced: the SQL, the compiler
(select list, converters) and, for each keyword, the lookup class and its
left-hand side. Later calls of the shape build only the lookups, with Django's
own classes (so values are validated and converted exactly as Django does),
compile each one with Django's compiler and check that it gives the very SQL
fragment Django gave; the cached statement is used only then. Rows go through
Django's own iterable (``from_db``, converters, ``post_init``).

A call is eligible only when nothing but the keywords, ``select_related()`` and
``prefetch_related()`` with string lookups differs from a plain manager queryset:
no other filter, ordering, values, deferral, annotations, custom QuerySet
overriding the methods involved. The select_related tree and the prefetch lookups
are part of the shape; the prefetching itself runs Django's prefetch code, natively,
on the one object found, as Django's ``get()`` does. Anything else, a value of
another type than a plain scalar, a fragment that differs, and every result other
than exactly one row (so ``DoesNotExist`` and ``MultipleObjectsReturned`` are raised
by Django) take Django's path.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from django.db.models.lookups import IsNull, Lookup
from django.db.models.query import ModelIterable, QuerySet
from django.db.models.sql.compiler import SQLCompiler
from django.db.models.sql.where import AND

from . import learned

__all__ = [
    "Shape",
    "capturing",
    "learn",
    "learning",
    "lookup_params",
    "record",
    "shape_key",
    "shapes_of",
]

# Exact value types a cached shape accepts (subclasses, None and expressions do not).
SCALARS = frozenset(
    {
        int,
        str,
        bool,
        float,
        decimal.Decimal,
        uuid.UUID,
        datetime.date,
        datetime.datetime,
        datetime.time,
    }
)
# QuerySet methods get() runs through; a subclass overriding one keeps Django's path.
_SELECT_RELATED = frozenset({"select_related"})  # part of the key
_GET_PATH = (
    "get",
    "filter",
    "_filter_or_exclude",
    "_filter_or_exclude_inplace",
    "order_by",
    "_chain",
    "_clone",
    "__len__",
    "_fetch_all",
    "query",
)


@dataclass(frozen=True, slots=True)
class Shape:
    """A compiled get() of one model, alias and keyword set."""

    sql: str
    compiler: SQLCompiler
    lookups: tuple[tuple[type[Lookup], Any, str], ...]  # (class, lhs, SQL fragment)


# While Django's get() runs to learn a shape: the (compiler, sql, params) it compiled.
_recorder = learned.Recorder("django_asyncdb_capture")


def _frozen(tree: Any) -> Any:
    """A hashable form of ``Query.select_related`` (False, True or a nested dict)."""
    if isinstance(tree, dict):
        return tuple(sorted((name, _frozen(sub)) for name, sub in tree.items()))
    return tree


def shape_key(queryset: QuerySet[Any], items: list[tuple[str, Any]]) -> tuple[Any, ...] | None:
    """The cache key of ``queryset.get(**dict(items))``, or None if it isn't eligible."""
    if (
        not items
        or queryset._result_cache is not None
        or queryset._iterable_class is not ModelIterable
        or queryset._fields is not None
        or not all(type(lookup) is str for lookup in queryset._prefetch_related_lookups)
        or queryset._known_related_objects
        or queryset._deferred_filter is not None
        or queryset._sticky_filter
        or queryset._defer_next_filter
        or not learned.plain_class(type(queryset), _GET_PATH)
        or not learned.pristine(queryset._query, _SELECT_RELATED)
    ):
        return None
    types = []
    for name, value in items:
        kind = type(value)
        if kind not in SCALARS:
            return None
        types.append((name, kind))
    query = queryset._query
    return (
        queryset.model,
        queryset.db,
        tuple(types),
        _frozen(query.select_related),
        tuple(queryset._prefetch_related_lookups),
    )


def shapes_of(wrapper: Any) -> dict[tuple[Any, ...], Shape | None]:
    """The get() shapes learned for ``wrapper``'s database (see :mod:`.learned`)."""
    return learned.store("get", wrapper)


def lookup_params(
    shape: Shape, items: list[tuple[str, Any]], compiler: SQLCompiler | None = None
) -> list[Any] | None:
    """The statement's parameters for these values, or None if Django would write
    other SQL for them (or refuse them: Django's path then raises its own error).
    ``compiler``: the shape's, bound to the caller's wrapper (:func:`.learned.bound`)."""
    compiler = compiler or shape.compiler
    params: list[Any] = []
    try:
        for (lookup_class, lhs, fragment), (_, value) in zip(shape.lookups, items, strict=True):
            lookup = lookup_class(lhs, value)
            if lookup.rhs is None and not lookup.can_use_none_as_rhs:
                return None
            sql, lookup_params = compiler.compile(lookup)
            if sql != fragment:
                return None
            params.extend(lookup_params)
    except Exception:  # EmptyResultSet, FullResultSet, or a value Django rejects: its
        return None  # own path then raises or handles it
    return params


def capturing() -> AbstractContextManager[list[tuple[SQLCompiler, str, Any]]]:
    """Record the statements a queryset evaluation compiles in this context."""
    return _recorder.capturing()


def learning() -> bool:
    """True while a get() learns its shape and has not seen its statement yet."""
    return _recorder.learning()


def record(compiler: SQLCompiler, sql: str, params: Any) -> None:
    """Called by the read path for each compiled queryset."""
    _recorder.record(compiler, (sql, params))


def learn(
    key: tuple[Any, ...],
    items: list[tuple[str, Any]],
    captured: list[tuple[SQLCompiler, str, Any]],
) -> Shape | None:
    """Make a Shape from what Django's get() compiled, if it is exactly one lookup per
    keyword, ANDed, whose fragments and parameters Django reproduces from the values."""
    if not captured:
        return None
    compiler, sql, params = captured[0]
    where = compiler.query.where
    if (
        compiler.query.model is not key[0]
        or where.connector != AND
        or where.negated
        or len(where.children) != len(items)
    ):
        return None
    lookups = []
    all_params: list[Any] = []
    try:
        for child, (_, value) in zip(where.children, items, strict=True):
            if not isinstance(child, Lookup) or isinstance(child, IsNull):
                return None
            fragment, child_params = compiler.compile(child)
            again_sql, again_params = compiler.compile(type(child)(child.lhs, value))
            if again_sql != fragment or list(again_params) != list(child_params):
                return None
            lookups.append((type(child), child.lhs, fragment))
            all_params.extend(child_params)
    except Exception:
        return None
    if list(params) != all_params:
        return None
    return Shape(sql, copy.copy(compiler), tuple(lookups))
