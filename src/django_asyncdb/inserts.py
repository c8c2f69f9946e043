"""INSERT statements learned from Django for repeated one-object saves.

Every ``await Model.objects.acreate(...)`` and ``await obj.asave()`` of a new object
compiles an INSERT with Django's ``SQLInsertCompiler.as_sql``, and for the same model,
fields and returned columns it writes the same SQL every time: only the values differ.
Inside the bridge, the package keeps that SQL per Django connection wrapper and, for
later saves of the same shape, gathers the values exactly as Django's ``as_sql`` does
(each field's ``pre_save`` then ``prepare_value``, Django's own methods, in Django's
order) and pairs them with the SQL Django wrote.

A save takes Django's whole ``as_sql`` instead whenever its SQL could depend on the
values: more than one object, ``ON CONFLICT``, a field with a ``get_placeholder`` (GIS),
a value that is an expression (``F()``, ``Now()``, ``DatabaseDefault`` of a
``db_default``) before or after preparation, a backend rewriting insert parameters, a
compiler subclass with its own ``as_sql``. When Django's path runs after the values were
gathered, it is handed those values rather than calling ``pre_save`` again (``auto_now``
and file fields have side effects). A shape is learned from Django's own output only if
that output is exactly the gathered values in order (same objects), and it is never
learned when ``as_sql`` left any other state on the compiler than an empty
``returning_params``. Outside the bridge (Django's sync ORM, other threads) nothing
changes.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models.sql.compiler import SQLInsertCompiler

from . import bridge, learned

__all__ = ["as_sql"]

_original = SQLInsertCompiler.as_sql
_default_modify = BaseDatabaseOperations.modify_insert_params
_NO_RETURNING_PARAMS = object()  # as_sql did not set returning_params
_MISSING = object()


def _eligible(compiler: SQLInsertCompiler) -> bool:
    query = compiler.query
    if len(query.objs) != 1 or query.on_conflict is not None or not query.fields:
        return False
    if (
        type(compiler).as_sql is not SQLInsertCompiler.as_sql  # a subclass's own as_sql
        or type(compiler.connection.ops).modify_insert_params is not _default_modify
    ):
        return False
    return not any(
        hasattr(field, "get_placeholder") or hasattr(field, "get_placeholder_sql")  # 6.1
        for field in query.fields
    )


def as_sql(self: SQLInsertCompiler) -> list[tuple[str, Any]]:
    """SQLInsertCompiler.as_sql: Django's, with the SQL of repeated shapes reused in the
    bridge (see the module's docstring)."""
    if not bridge.in_bridge() or not _eligible(self):
        return _original(self)
    query = self.query
    obj = query.objs[0]
    fields = query.fields
    saved: dict[Any, Any] = {}
    prepared: dict[Any, Any] = {}
    plain = True
    for field in fields:  # Django's order: pre_save, then prepare, field by field
        value = saved[field] = self.pre_save_val(field, obj)
        if plain and not hasattr(value, "resolve_expression"):
            value = prepared[field] = self.prepare_value(field, value)
            plain = not hasattr(value, "as_sql")
        else:
            plain = False
    if not plain:
        return _replay(self, saved, prepared)
    returning = self.returning_fields
    key = (type(self), query.model, tuple(fields), tuple(returning or ()), query.raw)
    shapes = learned.store("insert", self.connection)
    if key not in shapes:
        return _learn(self, shapes, key, saved, prepared)
    entry = shapes[key]
    if entry is None:
        return _replay(self, saved, prepared)
    sql, returning_params = entry
    if returning_params is not _NO_RETURNING_PARAMS:
        self.returning_params = returning_params
    return [(sql, tuple(prepared.values()))]


def _replay(
    compiler: SQLInsertCompiler, saved: dict[Any, Any], prepared: dict[Any, Any]
) -> list[tuple[str, Any]]:
    """Django's as_sql, handed the values already gathered instead of gathering them
    again (``pre_save`` may have side effects)."""
    prepare = compiler.prepare_value
    compiler.pre_save_val = lambda field, obj: saved[field]
    compiler.prepare_value = lambda field, value: (
        prepared[field] if field in prepared else prepare(field, value)
    )
    try:
        return _original(compiler)
    finally:
        del compiler.pre_save_val, compiler.prepare_value


def _learn(
    compiler: SQLInsertCompiler,
    shapes: dict[tuple[Any, ...], tuple[str, Any] | None],
    key: tuple[Any, ...],
    saved: dict[Any, Any],
    prepared: dict[Any, Any],
) -> list[tuple[str, Any]]:
    before = dict(compiler.__dict__)
    result = _replay(compiler, saved, prepared)
    after = compiler.__dict__
    returning_params = after.get("returning_params", _NO_RETURNING_PARAMS)
    changed = {name for name, value in after.items() if before.get(name, _MISSING) is not value}
    values = list(prepared.values())
    entry: tuple[str, Any] | None = None
    if (
        len(result) == 1
        and changed <= {"returning_params"}
        and (returning_params is _NO_RETURNING_PARAMS or returning_params == ())
        and len(result[0][1]) == len(values)
        and all(got is value for got, value in zip(result[0][1], values, strict=True))
    ):
        entry = (result[0][0], returning_params)
    shapes[key] = entry
    return result
