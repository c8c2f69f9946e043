"""UPDATE statements learned from Django for repeated saves of existing objects.

``await obj.asave()`` of a loaded object runs Django's ``Model._do_update``, which
builds ``base_qs.filter(pk=pk)``, turns it into an UpdateQuery and compiles it: work
that gives the same SQL for every save of the same model, fields and NULLs, only the
values differ. Inside the bridge, the first such save runs Django's own
``_do_update`` and this module keeps what Django compiled: the SQL, and the primary
key lookup (class, left-hand side, SQL fragment), as :mod:`~django_asyncdb.shapes`
does for ``get()``. Later saves of the shape prepare each value with the field's own
``get_db_prep_save``, build the key's lookup with Django's class and compile it, and
run the learned statement through Django's cursor (query logging, execute wrappers,
error mapping as usual) only if the lookup compiles to the very fragment Django gave.

Django's ``_do_update`` runs instead whenever the SQL could differ or more happens
than one UPDATE: a queryset other than the plain base manager's (optimistic locking's
version filter, a custom QuerySet overriding the methods involved), ``select_on_save``,
no values, an expression or a model instance as a value, a generated field, a field
with ``get_placeholder``, a prepared value that compiles to SQL, returned columns
(Django 6's ``db_returning`` fields), a primary key of another type than a plain
scalar. A shape is kept only if Django's statement was one UPDATE whose parameters are
exactly the prepared values and the key's, in that order. Outside the bridge nothing
changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.models import Model
from django.db.models.lookups import IsNull, Lookup
from django.db.models.query import QuerySet
from django.db.models.sql.compiler import SQLUpdateCompiler
from django.db.models.sql.where import AND

from . import bridge, learned, shapes

__all__ = ["as_sql", "do_update"]

_original_as_sql = SQLUpdateCompiler.as_sql
_NOTHING = object()


@dataclass(frozen=True, slots=True)
class Update:
    """A learned UPDATE by primary key of one model, field set and NULL pattern."""

    sql: str
    compiler: Any  # Django's compiler that wrote it (compiles the key's lookup)
    lookup: type[Lookup]
    lhs: Any
    fragment: str
    null_params: bool  # NULL sent as a parameter (Django 6), not written in the SQL (5.2)


# While Django's _do_update runs to learn a shape: the UPDATE statements it compiled.
_recorder = learned.Recorder("django_asyncdb_update_capture")


def as_sql(self: SQLUpdateCompiler) -> tuple[str, Any]:
    """SQLUpdateCompiler.as_sql: Django's, recorded while a shape is being learned."""
    result = _original_as_sql(self)
    _recorder.record(self, result)
    return result


def do_update(
    original: Any,
    self: Model,
    base_qs: QuerySet[Any],
    using: str,
    pk_val: Any,
    values: list[tuple[Any, Any, Any]],
    update_fields: Any,
    forced_update: bool,
    *rest: Any,
) -> Any:
    """Django's ``Model._do_update`` (``original``), with the statement of repeated
    shapes reused in the bridge (see the module's docstring). Optimistic locking's
    ``Model._do_update`` calls it for models without a version."""
    if (
        not values
        or not bridge.in_bridge()
        or (rest and rest[0])  # Django 6: columns to return
        or (self._meta.select_on_save and not forced_update)
        or type(base_qs)._update is not QuerySet._update
    ):
        return original(self, base_qs, using, pk_val, values, update_fields, forced_update, *rest)
    base_key = shapes.shape_key(base_qs, [("pk", pk_val)])
    if base_key is None or (prepared := _prepare(base_qs, values)) is None:
        return original(self, base_qs, using, pk_val, values, update_fields, forced_update, *rest)
    key = (*base_key, tuple(field for field, _, _ in values), tuple(v is None for v in prepared))
    wrapper = connections[base_qs.db]
    known = learned.store("update", wrapper)
    if key not in known:
        with _recorder.capturing() as captured:
            result = original(
                self, base_qs, using, pk_val, values, update_fields, forced_update, *rest
            )
        known[key] = _learn(captured, pk_val, prepared)
        return result
    shape = known[key]
    where = (
        None
        if shape is None
        else learned.key_params(
            shape.compiler, shape.lookup, shape.lhs, pk_val, shape.fragment, wrapper
        )
    )
    if shape is None or where is None:
        return original(self, base_qs, using, pk_val, values, update_fields, forced_update, *rest)
    params = prepared if shape.null_params else [v for v in prepared if v is not None]
    params.extend(where)
    with wrapper.cursor() as cursor:  # Django's wrapper: logging, execute_wrappers, errors
        cursor.execute(shape.sql, params)
        rows = cursor.rowcount
    if not rest:  # Django 5.2: whether a row was updated
        return rows > 0
    if rest[0] is None:  # Django 6: QuerySet._update's row count
        return rows
    return [()] * rows  # Django 6, no column to return: one empty row per updated row


def _prepare(base_qs: QuerySet[Any], values: list[tuple[Any, Any, Any]]) -> list[Any] | None:
    """The values as Django's update compiler prepares them, or None where it would
    write other SQL for them."""
    connection = connections[base_qs.db]
    prepared = []
    for field, model, value in values:
        if (
            getattr(field, "generated", False)
            or hasattr(field, "get_placeholder")
            or hasattr(field, "get_placeholder_sql")  # Django 6.1's name
            or hasattr(value, "resolve_expression")
            or hasattr(value, "prepare_database_save")
            or (model is not None and model is not base_qs.model)
        ):
            return None
        value = field.get_db_prep_save(value, connection=connection)
        if hasattr(value, "as_sql"):
            return None
        prepared.append(value)
    return prepared


def _same(a: Any, b: Any) -> bool:
    """Equal parameters of the same type; psycopg's JSON wrappers (no ``__eq__``) by
    what they wrap and how they dump it."""
    if type(a) is not type(b):
        return False
    if a == b:
        return True
    wrapped = getattr(a, "obj", _NOTHING)
    return wrapped is not _NOTHING and wrapped == b.obj and a.dumps is b.dumps


def _learn(
    captured: list[tuple[SQLUpdateCompiler, str, Any]], pk_val: Any, prepared: list[Any]
) -> Update | None:
    """An Update from what Django's _do_update compiled, if it was one UPDATE by the
    key whose parameters are the prepared values and the key's, in that order."""
    if len(captured) != 1:
        return None
    compiler, sql, params = captured[0]
    query = compiler.query
    where = query.where
    if (
        not sql
        or query.related_updates
        or where.connector != AND
        or where.negated
        or len(where.children) != 1
    ):
        return None
    child = where.children[0]
    if not isinstance(child, Lookup) or isinstance(child, IsNull):
        return None
    try:
        fragment, key_params = compiler.compile(child)
        again, again_params = compiler.compile(type(child)(child.lhs, pk_val))
    except Exception:
        return None
    if again != fragment or list(again_params) != list(key_params):
        return None
    got = list(params)
    for null_params in (False, True):
        values = prepared if null_params else [v for v in prepared if v is not None]
        expected = [*values, *key_params]
        if len(got) == len(expected) and all(map(_same, got, expected)):
            return Update(sql, compiler, type(child), child.lhs, fragment, null_params)
    return None
