"""SELECT statements learned from Django for repeated queryset shapes.

Evaluating ``Account.objects.select_for_update().filter(pk__in=keys).order_by("pk")``
natively (``async for``, and the reads Django's own methods make in the bridge) spends a
large part of its CPU time in Django's compiler, which writes the same SQL every time
for the same shape: only the values of the filters differ. As :mod:`~django_asyncdb.shapes`
does for ``get()``, the first evaluation of a shape compiles with Django and this module
keeps the SQL, the compiler (select list, converters) and each filter's SQL fragment.
Later evaluations of the shape compile only their own filters, with Django's compiler,
and use the statement if every filter gives the very fragment Django gave; rows go
through Django's own iterable, as on the compiled path.

A shape is the model, the database, each filter's lookup class and field, the ordering
(field names), ``select_related()``, ``distinct()`` (and its field names), whether it
has an offset and a limit, and ``select_for_update()``'s options. Django writes a
slice's numbers into the SQL (``LIMIT 20 OFFSET 40``): a statement learned with one
slice is used for another of the shape with the clause the backend's
``limit_offset_sql()`` writes for it, put where Django put the first one's (kept only if
that clause occurs once in the statement). A queryset is eligible only if nothing else
sets it apart from ``Model.objects.all()``: filters ANDed on the model's own table (no
join, no ``IS NULL``, no negation), model instances as results (a related manager's
queryset included) or ``values()`` / ``values_list()`` of the model's own columns (the
fields are part of the shape); no ``extra()``, ``defer()``, combination, custom ``Query``
class. Annotations may be Django's ``Count``, ``Sum``, ``Avg``, ``Min`` and ``Max`` of one
column as ``annotate(n=Count("books", distinct=True))`` writes them (no filter, default,
output field or ordering); the shape then adds each one's class, resolved column and
distinct, the grouping, and every table of the query (the joins the aggregates made, with
their join types and reference counts) and, for ``values()``, the selected columns in their
order. An annotation filtered on (``HAVING``), any other expression, a join whose SQL has
parameters (a generic relation's): not learned. A ``select_for_update()`` outside a
transaction takes Django's path, which refuses it. Anything else, and any filter whose
fragment differs (another length of ``pk__in``) or that Django refuses, compiles as
before. A statement is kept only if its parameters are exactly its filters', in order.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from django.db.models.aggregates import Avg, Count, Max, Min, Sum
from django.db.models.expressions import Col, Star
from django.db.models.lookups import Lookup
from django.db.models.query import (
    FlatValuesListIterable,
    ModelIterable,
    NamedValuesListIterable,
    QuerySet,
    ValuesIterable,
    ValuesListIterable,
)
from django.db.models.sql.compiler import SQLCompiler
from django.db.models.sql.datastructures import BaseTable, Join
from django.db.models.sql.query import Query

from . import learned
from .shapes import _frozen

__all__ = ["Read", "key_of", "learn", "params_of", "shapes_of", "sql_of"]

# Query attributes that are part of the shape (each changes the SQL as a whole).
_VARIANT = (
    "order_by",
    "default_ordering",
    "standard_ordering",
    "select_related",
    "low_mark",
    "high_mark",  # (the shape has whether each is set; the values go in the SQL)
    "select_for_update",
    "select_for_update_nowait",
    "select_for_update_skip_locked",
    "select_for_update_of",
    "select_for_no_key_update",
    "distinct",
    "distinct_fields",
)
_SKIPPED = learned.FILTERED | frozenset(_VARIANT)
# What annotate() with aggregates sets (keyed by _annotated()).
_ANNOTATED = frozenset({"annotations", "group_by"})
_AGGREGATES = frozenset({Avg, Count, Max, Min, Sum})
# What values() / values_list() set: the columns follow from ``values_select`` (a
# field that needs a join makes the query ineligible, see own_table_filters).
_VALUES = frozenset(
    {
        "select",
        "values_select",
        "default_cols",
        "selected",
        "annotation_select_mask",
        "extra_select_mask",
    }
)
# What pristine() skips, by (annotated, values()): made once, as key_of runs on every
# evaluation.
_SKIPPED_BY_KIND = {
    (False, False): _SKIPPED,
    (False, True): _SKIPPED | _VALUES,
    (True, False): _SKIPPED | _ANNOTATED,
    (True, True): _SKIPPED | _ANNOTATED | _VALUES,
}
_SELECTED = frozenset({int, str, type(None)})  # what ``Query.selected`` maps a name to
_VALUES_ITERABLES = frozenset(
    {ValuesIterable, ValuesListIterable, FlatValuesListIterable, NamedValuesListIterable}
)


@dataclass(frozen=True, slots=True)
class Read:
    """A compiled SELECT of one queryset shape."""

    sql: str
    compiler: SQLCompiler
    # The statement before and after Django's LIMIT/OFFSET clause, if it is sliced.
    around_limits: tuple[str, str] | None
    fragments: tuple[str, ...]  # each filter's SQL, in the WHERE's order
    for_update: bool


def shapes_of(wrapper: Any) -> dict[tuple[Any, ...], Read | None]:
    """The read shapes learned for ``wrapper``'s database (see :mod:`.learned`)."""
    return learned.store("read", wrapper)


def _names(value: Any) -> tuple[str, ...] | None:
    """An ordering or ``of=`` given as field names only, or None."""
    if not all(type(name) is str for name in value):
        return None
    return tuple(value)


def _aggregate(name: str, annotation: Any) -> tuple[Any, ...] | None:
    """The shape of an ``annotate()`` of one of Django's aggregates over one column, as
    written (``Count("books", distinct=True)``: no filter, default, output field or
    ordering), resolved (the joins it made are keyed on their own), or None."""
    kind = type(annotation)
    if kind not in _AGGREGATES or annotation.is_summary:
        return None
    args, kwargs = annotation._constructor_args
    if len(args) != 1 or type(args[0]) is not str or not kwargs.keys() <= {"distinct"}:
        return None
    source, *others = annotation.get_source_expressions()  # (then filter, order_by)
    if any(other is not None for other in others):
        return None
    if type(source) is Col:
        column: Any = (source.alias, source.target, source.output_field)
    elif type(source) is Star:
        column = "*"
    else:
        return None
    return (name, kind, bool(annotation.distinct), column)


def _annotated(query: Query) -> tuple[Any, ...] | None:
    """The shape of the query's aggregate annotations, its grouping and its tables (the
    joins the aggregates made: each alias, table, parent, join type, relation and
    reference count), or None if any of them is of another kind."""
    annotations = []
    for name, annotation in query.annotations.items():
        found = _aggregate(name, annotation)
        if found is None:
            return None
        annotations.append(found)
    group_by = query.group_by
    if group_by is not None and group_by is not True:
        if not all(type(column) is Col for column in group_by):
            return None
        group_by = tuple((column.alias, column.target) for column in group_by)
    tables: list[tuple[Any, ...]] = []
    for alias, table in query.alias_map.items():
        if type(table) is BaseTable:
            tables.append((alias, table.table_name, table.table_alias))
        elif type(table) is Join and table.filtered_relation is None:
            tables.append(
                (
                    alias,
                    table.table_name,
                    table.parent_alias,
                    table.join_type,
                    table.join_field,
                    table.nullable,
                )
            )
        else:
            return None
    refcount = tuple(query.alias_refcount.items())
    return tuple(annotations), group_by, tuple(tables), refcount


def key_of(queryset: QuerySet[Any]) -> tuple[tuple[Any, ...], list[Lookup]] | None:
    """The shape of ``queryset``'s SELECT and its filters, or None if it isn't eligible."""
    iterable = queryset._iterable_class
    query = queryset.query  # (applies a related manager's deferred filter)
    annotated: tuple[Any, ...] | None = None
    if query.annotations:
        annotated = _annotated(query)
        if annotated is None:
            return None
    has_annotations = annotated is not None
    if iterable is ModelIterable and queryset._fields is None:
        if not learned.pristine(query, _SKIPPED_BY_KIND[has_annotations, False]):
            return None
        values: tuple[Any, ...] | None = None
    elif iterable in _VALUES_ITERABLES:
        mask = query.annotation_select_mask
        if (
            not learned.pristine(query, _SKIPPED_BY_KIND[has_annotations, True])
            or query.extra_select_mask
        ):
            return None
        if mask and not has_annotations:
            return None
        # ``selected`` orders the columns: an annotation added again (after alias(),
        # or a values() that masked it) keeps its place in ``annotations`` but comes
        # last in ``selected``. (The iterable class follows from these; the SQL doesn't
        # depend on it.)
        selected = query.selected
        if selected is not None:
            if not all(type(value) in _SELECTED for value in selected.values()):
                return None
            selected = tuple(selected.items())
        values = (
            queryset._fields,
            query.values_select,
            query.default_cols,
            None if mask is None else tuple(name for name in query.annotations if name in mask),
            selected,
        )
    else:
        return None
    found = learned.own_table_filters(query, joined=has_annotations)
    if found is None:
        return None
    lookups, trimmed = found
    signature = tuple((type(lookup), lookup.lhs.target) for lookup in lookups)
    order_by = _names(query.order_by)
    of = _names(query.select_for_update_of)
    distinct_fields = _names(query.distinct_fields)
    if order_by is None or of is None or distinct_fields is None:
        return None
    variant = (
        order_by,
        query.default_ordering,
        query.standard_ordering,
        _frozen(query.select_related),
        query.low_mark != 0,
        query.high_mark is None,
        query.select_for_update,
        query.select_for_update_nowait,
        query.select_for_update_skip_locked,
        of,
        query.select_for_no_key_update,
        query.distinct,
        distinct_fields,
        values,
        annotated,
    )
    return (query.model, queryset.db, signature, trimmed, variant), lookups


def learn(compiler: SQLCompiler, sql: str, params: Any, lookups: list[Lookup]) -> Read | None:
    """Keep what Django compiled if its parameters are exactly the filters', in order."""
    fragments = []
    all_params: list[Any] = []
    try:
        for lookup in lookups:
            fragment, lookup_params = compiler.compile(lookup)
            if fragment not in sql:
                return None
            fragments.append(fragment)
            all_params.extend(lookup_params)
    except Exception:
        return None
    if list(params) != all_params:
        return None
    query = compiler.query
    around_limits = None
    if query.is_sliced:
        limits = compiler.connection.ops.limit_offset_sql(query.low_mark, query.high_mark)
        if not limits or sql.count(limits) != 1:
            return None
        before, _, after = sql.partition(limits)
        around_limits = (before, after)
    return Read(
        sql,
        copy.copy(compiler),
        around_limits,
        tuple(fragments),
        bool(query.select_for_update),
    )


def sql_of(shape: Read, queryset: QuerySet[Any], wrapper: Any) -> str:
    """The learned statement with ``queryset``'s slice."""
    if shape.around_limits is None:
        return shape.sql
    before, after = shape.around_limits
    query = queryset.query
    return before + wrapper.ops.limit_offset_sql(query.low_mark, query.high_mark) + after


def params_of(shape: Read, lookups: list[Lookup], compiler: SQLCompiler) -> list[Any] | None:
    """The statement's parameters for these filters, or None where Django's compiler
    must run (another SQL, a value it refuses, select_for_update outside a transaction).
    ``compiler``: the shape's, bound to the caller's wrapper (:func:`.learned.bound`)."""
    if shape.for_update and compiler.connection.get_autocommit():
        return None
    params: list[Any] = []
    try:
        for lookup, fragment in zip(lookups, shape.fragments, strict=True):
            sql, lookup_params = compiler.compile(lookup)
            if sql != fragment:
                return None
            params.extend(lookup_params)
    except Exception:  # EmptyResultSet, FullResultSet, a value Django rejects: its path
        return None
    return params
