"""DELETE statements learned from Django for repeated ``filter(pk=...).adelete()``.

``await Model.objects.filter(pk=1).adelete()`` runs Django's ``QuerySet.delete()``:
it clones the queryset, builds a deletion ``Collector``, which finds it can delete
the rows with one statement (no signal receivers, no relation to follow), opens an
atomic block, clones the query again into a ``DeleteQuery`` and compiles it. For a
filter on the primary key alone, all of that writes the same SQL every time; only the
value differs.

The first delete of a shape (model, database, the key's lookup class) runs Django's
own ``delete()`` in the bridge and this module keeps the ``DELETE`` Django compiled,
with the compiler and the key's SQL fragment. Later deletes of the shape ask Django's
``Collector.can_fast_delete`` whether Django would still delete with one statement
(receivers can be connected at any time), compile the queryset's own key lookup with
Django's compiler and check it gives the very fragment Django gave, then run the
learned statement in an atomic block with ``savepoint=False``, as Django's collector
does, natively and without the bridge. The result is Django's: the number of rows
deleted and the count per model label (empty when nothing was deleted).

Django's ``delete()`` runs instead for anything else: another filter or more than one,
a join, ordering, slicing, ``values()``, a combined or annotated query, a custom
QuerySet overriding the methods involved, receivers of ``pre_delete``/``post_delete``,
relations to collect, ``IS NULL`` lookups, a fragment that differs (another length of
``pk__in``), and an alias with execute wrappers. Django's sync ORM is unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Model
from django.db.models.deletion import Collector
from django.db.models.lookups import Lookup
from django.db.models.query import QuerySet
from django.db.models.sql.compiler import SQLDeleteCompiler

from . import connections as seam
from . import learned

__all__ = ["as_sql", "native_adelete", "native_model_adelete"]

_original_as_sql = SQLDeleteCompiler.as_sql
# QuerySet methods delete() runs through; a subclass overriding one keeps Django's path.
_DELETE_PATH = ("delete", "_raw_delete", "_chain", "_clone", "_not_support_combined_queries")


@dataclass(frozen=True, slots=True)
class Delete:
    """A learned DELETE by primary key of one model, alias and lookup class."""

    sql: str
    compiler: SQLDeleteCompiler  # Django's compiler that wrote it (compiles the lookup)
    fragment: str


# While Django's delete() runs to learn a shape: the DELETE statements it compiled.
_recorder = learned.Recorder("django_asyncdb_delete_capture")


def as_sql(self: SQLDeleteCompiler) -> tuple[str, Any]:
    """SQLDeleteCompiler.as_sql: Django's, recorded while a shape is being learned."""
    result = _original_as_sql(self)
    _recorder.record(self, result)
    return result


def _key_lookup(queryset: QuerySet[Any]) -> Lookup | None:
    """The queryset's one lookup on the primary key, if that is all that sets it apart
    from ``Query(model)``: no join, no other filter, no ordering, nothing else."""
    if (
        queryset._fields is not None
        or queryset._deferred_filter is not None
        or not learned.plain_class(type(queryset), _DELETE_PATH)
    ):
        return None
    query = queryset._query
    if not learned.pristine(query, learned.FILTERED):
        return None
    found = learned.own_table_filters(query)
    if found is None:
        return None
    lookups, trimmed = found
    if trimmed or len(lookups) != 1 or lookups[0].lhs.target is not query.model._meta.pk:
        return None
    return lookups[0]


def _learn(captured: list[tuple[SQLDeleteCompiler, str, Any]], lookup: Lookup) -> Delete | None:
    """Keep Django's statement if it was one DELETE whose only parameters are the key
    lookup's, and the compiler (a backend's subclass included) writes it again."""
    if len(captured) != 1:
        return None
    compiler, sql, params = captured[0]
    try:
        fragment, lookup_params = compiler.compile(lookup)
        again_sql, again_params = compiler.as_sql()
    except Exception:
        return None
    if (
        again_sql != sql
        or list(again_params) != list(params)
        or list(params) != list(lookup_params)
        or fragment not in sql
    ):
        return None
    return Delete(sql, compiler, fragment)


def native_adelete(
    in_bridge: Callable[..., Any], alias_of: Callable[[QuerySet[Any], dict[str, Any]], str]
) -> Callable[..., Any]:
    """``QuerySet.adelete``: ``in_bridge`` (Django's ``delete()`` run in the bridge), with
    the statement of repeated deletes by primary key learned (see the module's docstring);
    ``alias_of``: the database delete() writes to."""

    @functools.wraps(in_bridge)
    async def adelete(self: QuerySet[Any]) -> tuple[int, dict[str, int]]:
        lookup = _key_lookup(self)
        if lookup is None:
            return await in_bridge(self)
        model = self.model
        alias = alias_of(self, {})
        if not seam.is_native(alias):
            return await in_bridge(self)
        wrapper = await seam.prepare(alias)
        if wrapper.execute_wrappers:  # they wrap Django's cursor: its path runs them
            return await in_bridge(self)
        known = learned.store("delete", wrapper)
        key = (model, type(lookup))
        if key not in known:
            with _recorder.capturing() as captured:
                try:
                    return await in_bridge(self)
                finally:
                    if captured:  # (none: Django found the filter matches nothing)
                        known[key] = _learn(captured, lookup)
        shape = known[key]
        if shape is None or not Collector(using=alias, origin=self).can_fast_delete(self):
            return await in_bridge(self)
        try:
            fragment, params = learned.bound(shape.compiler, wrapper).compile(lookup)
        except Exception:  # EmptyResultSet, or a value Django rejects: its path handles it
            return await in_bridge(self)
        if fragment != shape.fragment:
            return await in_bridge(self)
        async with transaction.atomic(using=alias, savepoint=False):
            count = (await seam.run(alias, shape.sql, params, wrapper=wrapper)).rowcount
        self._result_cache = None
        return (count, {model._meta.label: count}) if count else (0, {})

    return adelete


# Model.adelete() -------------------------------------------------------------------
#
# ``await obj.adelete()`` runs Django's ``Model.delete()``: a Collector collects the
# object and its relations, and when Django's ``Collector.can_fast_delete(obj)`` holds
# (no receivers, no relation but DO_NOTHING, no parent, no generic relation) deletes it
# with ``DeleteQuery.delete_batch([pk])`` under ``mark_for_rollback_on_error``, sets the
# key attribute to None and returns ``(count, {label: count})``. The first such delete
# of a model runs Django's method and keeps the statement (``... WHERE id IN (%s)``),
# the key lookup's class, left-hand side and fragment; later ones, where Django's
# ``can_fast_delete(obj)`` still holds, run it natively with that result. Anything else
# (a ``delete()`` override, a composite key, receivers, relations to collect, an
# alias with execute wrappers): Django's method in the bridge.


@dataclass(frozen=True, slots=True)
class InstanceDelete:
    """A learned DELETE of one object of a model, by its primary key."""

    sql: str
    compiler: SQLDeleteCompiler
    lookup: type[Lookup]
    lhs: Any
    fragment: str


def _learn_instance(
    captured: list[tuple[SQLDeleteCompiler, str, Any]], pk: Any
) -> InstanceDelete | None:
    """Keep Django's statement if it was one DELETE whose only filter is the key lookup
    of ``[pk]``, which compiles the same again from its class and left-hand side."""
    if len(captured) != 1:
        return None
    compiler, sql, params = captured[0]
    where = compiler.query.where
    if where.negated or len(where.children) != 1:
        return None
    child = where.children[0]
    if not isinstance(child, Lookup):
        return None
    try:
        fragment, lookup_params = compiler.compile(child)
        again, again_params = compiler.compile(type(child)(child.lhs, [pk]))
    except Exception:
        return None
    if (
        again != fragment
        or list(again_params) != list(lookup_params)
        or list(params) != list(lookup_params)
        or fragment not in sql
    ):
        return None
    return InstanceDelete(sql, compiler, type(child), child.lhs, fragment)


def native_model_adelete(
    in_bridge: Callable[..., Any], alias_of: Callable[[Model, dict[str, Any]], str]
) -> Callable[..., Any]:
    """``Model.adelete``: ``in_bridge`` (Django's ``Model.delete()`` run in the bridge),
    with the statement of repeated fast deletes learned (see above); ``alias_of``: the
    database Django's delete() writes to."""

    @functools.wraps(in_bridge)
    async def adelete(self: Model, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        model = type(self)
        meta = model._meta
        pk = self.pk
        if (
            args
            or not set(kwargs) <= {"using", "keep_parents"}
            or model.delete is not Model.delete
            or getattr(meta, "is_composite_pk", False)
            or pk is None
        ):
            return await in_bridge(self, *args, **kwargs)
        alias = alias_of(self, kwargs)
        if not seam.is_native(alias):
            return await in_bridge(self, *args, **kwargs)
        wrapper = await seam.prepare(alias)
        if wrapper.execute_wrappers or not Collector(using=alias, origin=self).can_fast_delete(
            self
        ):
            return await in_bridge(self, *args, **kwargs)
        known = learned.store("delete", wrapper)
        key = (model, None)
        if key not in known:
            with _recorder.capturing() as captured:
                try:
                    return await in_bridge(self, *args, **kwargs)
                finally:
                    if captured:
                        known[key] = _learn_instance(captured, pk)
        shape = known[key]
        params = (
            None
            if shape is None
            else learned.key_params(
                shape.compiler, shape.lookup, shape.lhs, [pk], shape.fragment, wrapper
            )
        )
        if shape is None or params is None:
            return await in_bridge(self, *args, **kwargs)
        with transaction.mark_for_rollback_on_error(using=alias):
            count = (await seam.run(alias, shape.sql, params, wrapper=wrapper)).rowcount
        setattr(self, meta.pk.attname, None)
        return count, {meta.label: count}

    return adelete
