"""Where learned statements are kept (get, reads, inserts, updates, deletes).

Per database alias and its settings, shared by every Django connection wrapper of the
alias: Django makes a wrapper per thread and per async context, which under ASGI is one
per request, so statements kept per wrapper were learned again by every request, and a
statement's compiler, which refers to its wrapper, kept each request's wrapper alive.
A store is replaced when the alias's settings are (``override_settings(DATABASES=...)``
gives new ones) and emptied when it reaches ``MAX_SHAPES`` entries. A compiler learned
on one wrapper is used through :func:`bound`: a copy on the caller's wrapper.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.db.models.expressions import Col
from django.db.models.lookups import IsNull, Lookup
from django.db.models.query import QuerySet
from django.db.models.sql.compiler import SQLCompiler
from django.db.models.sql.datastructures import BaseTable
from django.db.models.sql.query import Query
from django.db.models.sql.where import AND

__all__ = [
    "FILTERED",
    "MAX_SHAPES",
    "Recorder",
    "bound",
    "forget",
    "key_params",
    "own_table_filters",
    "plain_class",
    "pristine",
    "store",
]

MAX_SHAPES = 1024
C = TypeVar("C", bound=SQLCompiler)

# (kind, alias) -> (the alias's settings dict, key -> learned statement or None)
_stores: dict[tuple[str, str], tuple[Any, dict[Any, Any]]] = {}


def store(kind: str, wrapper: Any) -> dict[Any, Any]:
    """The statements of one kind learned for ``wrapper``'s alias and settings."""
    key = (kind, wrapper.alias)
    entry = _stores.get(key)
    if entry is None or entry[0] is not wrapper.settings_dict:
        entry = _stores[key] = (wrapper.settings_dict, {})
    found = entry[1]
    if len(found) >= MAX_SHAPES:
        found.clear()
    return found


def bound(compiler: C, wrapper: Any) -> C:
    """A copy of a learned compiler that compiles and converts on ``wrapper``."""
    own = copy.copy(compiler)
    own.connection = wrapper
    return own


def key_params(
    compiler: SQLCompiler, lookup: type[Lookup], lhs: Any, value: Any, fragment: str, wrapper: Any
) -> list[Any] | None:
    """The parameters of ``lookup(lhs, value)`` compiled by a learned compiler on
    ``wrapper``, or None where Django would write another fragment than the learned one or
    refuses the value (its own path then raises its own error)."""
    try:
        built = lookup(lhs, value)
        if built.rhs is None:
            return None
        sql, params = bound(compiler, wrapper).compile(built)
    except Exception:
        return None
    return list(params) if sql == fragment else None


def forget() -> None:
    """Drop every learned statement: the next use of each shape runs Django's path."""
    _stores.clear()


# What the learning modules share: recording what Django compiled, and telling whether
# a queryset is one whose SQL depends only on what a shape's key holds.


class Recorder:
    """Records what a compiler's ``as_sql`` returned, in the context that is learning."""

    def __init__(self, name: str) -> None:
        self._captured: ContextVar[list[tuple[Any, str, Any]] | None] = ContextVar(
            name, default=None
        )

    def record(self, compiler: Any, result: tuple[str, Any]) -> None:
        captured = self._captured.get()
        if captured is not None:
            captured.append((compiler, *result))

    def learning(self) -> bool:
        """True while learning and nothing was recorded yet."""
        captured = self._captured.get()
        return captured is not None and not captured

    @contextmanager
    def capturing(self) -> Iterator[list[tuple[Any, str, Any]]]:
        captured: list[tuple[Any, str, Any]] = []
        token = self._captured.set(captured)
        try:
            yield captured
        finally:
            self._captured.reset(token)


_plain: dict[tuple[type, tuple[str, ...]], bool] = {}


def plain_class(cls: type, path: tuple[str, ...]) -> bool:
    """True if the QuerySet class overrides none of the methods in ``path``."""
    key = (cls, path)
    plain = _plain.get(key)
    if plain is None:
        plain = _plain[key] = all(getattr(cls, name) is getattr(QuerySet, name) for name in path)
    return plain


# Query attributes that filtering on the model's own table sets (the filters are
# compared on their own).
FILTERED = frozenset(
    {"where", "alias_refcount", "alias_map", "table_map", "used_aliases", "_lookup_joins"}
)
# Query attributes that cache values derived from others (which are compared).
_DERIVED = frozenset({"base_table", "_annotation_select_cache", "_extra_select_cache"})
_MISSING = object()
_fresh: dict[type, dict[str, Any]] = {}


def pristine(query: Query, skip: frozenset[str] = frozenset()) -> bool:
    """True if ``query`` is in the state ``Query(model)`` makes, the attributes in
    ``skip`` aside: every attribute equal to a fresh query's, or to the class default
    (chaining stores some defaults on the instance), caches of derived values aside."""
    if type(query) is not Query:
        return False
    fresh = _fresh.get(query.model)
    if fresh is None:
        fresh = _fresh[query.model] = dict(Query(query.model).__dict__)
    for name, value in query.__dict__.items():
        if name in skip:
            continue
        expected = fresh.get(name, _MISSING)
        if expected is _MISSING:
            if name in _DERIVED:
                continue
            expected = getattr(Query, name, _MISSING)
        if value is not expected and value != expected:
            return False
    return True


def own_table_filters(
    query: Query, *, joined: bool = False
) -> tuple[list[Lookup], tuple[str, ...]] | None:
    """The query's filters, if they are lookups (not ``IS NULL``) ANDed on columns of the
    model's own table, with the aliases of the other tables; None otherwise. Those tables
    must be joins a filter made and trimmed (not in the SQL: a related manager's) unless
    ``joined`` (the caller keys the joins)."""
    table = query.model._meta.db_table
    alias_map = query.alias_map
    if alias_map and type(alias_map.get(table)) is not BaseTable:
        return None
    trimmed = tuple(alias for alias in alias_map if alias != table)
    refcount = query.alias_refcount
    if not joined and any(refcount.get(alias) for alias in trimmed):
        return None
    where = query.where
    if where.connector != AND or where.negated:
        return None
    for lookup in where.children:
        if (
            not isinstance(lookup, Lookup)
            or isinstance(lookup, IsNull)
            or type(lookup.lhs) is not Col
            or lookup.lhs.alias != table
        ):
            return None
    return list(where.children), trimmed
