"""COUNT and EXISTS statements learned from Django for repeated queryset shapes.

``await qs.acount()`` and ``await qs.aexists()`` run Django's ``count()`` / ``exists()``
in the bridge, where Django clones the query, turns it into ``SELECT COUNT(*) ...`` (or
``SELECT 1 ... LIMIT 1``) and compiles it, every time, into SQL that depends only on the
queryset's shape: a paginated API counts its list on every request. As :mod:`.reads`
does for a queryset's rows, the first ``acount()`` (``aexists()``) of a shape runs
Django's method and keeps the one statement it compiled, if its parameters are exactly
the filters', in order; later ones compile only their own filters and run the statement
if every filter gives the very fragment Django gave. A count goes through Django's
converters for its column, as Django's ``get_aggregation`` does.

A shape is what :mod:`.reads` keys a SELECT by, and the same querysets are eligible,
except sliced and distinct ones and ``select_for_update()`` (Django counts those with a
subquery, or drops the lock): filters ANDed on the model's own table, no annotation or
grouping. A queryset with its results already fetched, a QuerySet class with its own
``count()`` / ``exists()``, a filter Django refuses or compiles to other SQL (another
length of ``pk__in``, an empty one): Django's method, in the bridge, as before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any

from django.db.models.query import QuerySet
from django.db.models.sql.compiler import SQLCompiler

from . import connections as seam
from . import learned, reads, shapes

__all__ = ["as_sql", "native"]

_original_as_sql = SQLCompiler.as_sql

# While Django's count() / exists() runs to learn a shape: the SELECTs it compiled.
_recorder = learned.Recorder("django_asyncdb_count_capture")


def as_sql(self: SQLCompiler, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """SQLCompiler.as_sql: Django's, recorded while a count shape is being learned."""
    result = _original_as_sql(self, *args, **kwargs)
    _recorder.record(self, result)
    return result


def _count(compiler: SQLCompiler, rows: list[Any]) -> Any:
    """The count in Django's type: its converters applied, as ``get_aggregation`` does."""
    converters = compiler.get_converters(compiler.query.annotation_select.values())
    row = rows[0]
    if converters:
        row = next(iter(compiler.apply_converters([row], converters)))
    return row[0]


def _exists(compiler: SQLCompiler, rows: list[Any]) -> bool:
    return bool(rows)


_RESULTS: dict[str, Callable[[SQLCompiler, list[Any]], Any]] = {
    "count": _count,
    "exists": _exists,
}


def _learn(
    kind: str, captured: list[Any], lookups: list[Any]
) -> tuple[reads.Read, list[Any]] | None:
    """What Django compiled for the shape, if it was one SELECT of the form expected,
    and the parameters of its select list (EXISTS's ``1``), which come before the
    filters'."""
    if len(captured) != 1:
        return None
    compiler, sql, params = captured[0]
    query = compiler.query
    if kind == "count" and (list(query.annotation_select) != ["__count"] or query.select):
        return None
    params = list(params)
    try:
        count = sum(len(compiler.compile(lookup)[1]) for lookup in lookups)
    except Exception:
        return None
    selected = params[: len(params) - count]
    if kind == "count" and selected:
        return None
    learned_read = reads.learn(compiler, sql, params[len(selected) :], lookups)
    return None if learned_read is None else (learned_read, selected)


def native(
    kind: str, in_bridge: Callable[[QuerySet[Any]], Coroutine[Any, Any, Any]]
) -> Callable[[QuerySet[Any]], Coroutine[Any, Any, Any]]:
    """The native ``a<kind>`` of QuerySet (``kind``: count or exists); ``in_bridge``
    runs Django's ``<kind>()`` in the bridge."""
    result_of = _RESULTS[kind]
    path = (kind,)

    async def method(self: QuerySet[Any]) -> Any:
        query = self.query
        if (
            self._result_cache is not None
            or query.is_sliced
            or query.select_for_update
            or query.distinct
            or query.annotations
            or not learned.plain_class(type(self), path)
            or shapes.learning()
        ):
            return await in_bridge(self)
        found = reads.key_of(self)
        if found is None or not seam.is_native(found[0][1]):
            return await in_bridge(self)
        key, lookups = found
        alias = key[1]
        wrapper = await seam.prepare(alias)
        known = learned.store(kind, wrapper)
        if key not in known:
            with _recorder.capturing() as captured:
                result = await in_bridge(self)
            if captured:  # (none if a filter matched nothing: Django skipped the query)
                known[key] = _learn(kind, captured, lookups)
            return result
        found_shape = known[key]
        if found_shape is not None:
            shape, selected = found_shape
            compiler = learned.bound(shape.compiler, wrapper)
            params = reads.params_of(shape, lookups, compiler)
            if params is not None:
                params[:0] = selected
                rows = await seam.fetchall(alias, shape.sql, params, wrapper)
                return result_of(compiler, rows)
        return await in_bridge(self)

    functools.update_wrapper(method, getattr(QuerySet, f"a{kind}"))
    method.__doc__ = (
        f"Native async twin of QuerySet.{kind}(), with the statements of repeated shapes "
        "learned (see :mod:`~django_asyncdb.counts`)."
    )
    return method
