"""Every Django (and asgiref) entry point django_asyncdb rebinds, in one place.

``install()`` runs from ``AppConfig.ready()``. A test checks ``_patches()`` against the
installed Django, so an upgrade that moves one of these fails loudly instead of
silently falling back to threads.

``AWAITABLE_PATCHES`` are the exception: they change how a queryset looks to other code
(``inspect.isawaitable``), so they are installed only while the project's settings ask
for them (``ASYNCDB_AWAITABLE_QUERYSETS = True``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import SyncToAsync
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers import asgi as django_asgi
from django.db import models as django_models
from django.db import transaction as django_transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model
from django.db.models import query as django_query
from django.db.models.fields import related_descriptors
from django.db.models.fields.related_descriptors import (
    ForwardManyToOneDescriptor,
    ReverseOneToOneDescriptor,
)
from django.db.models.query import QuerySet, RawQuerySet
from django.db.models.sql.compiler import (
    SQLCompiler,
    SQLDeleteCompiler,
    SQLInsertCompiler,
    SQLUpdateCompiler,
)
from django.db.models.sql.query import Query
from django.db.transaction import Atomic
from django.dispatch import Signal
from django.utils import deprecation as django_deprecation

from . import (
    conf,
    counts,
    deletes,
    hooks,
    inserts,
    locking,
    models,
    query,
    related,
    signals,
    testing,
    transaction,
    updates,
    wrapper,
)


def _patches() -> list[tuple[Any, str, Any]]:
    patches: list[tuple[Any, str, Any]] = [
        # Reads.
        (QuerySet, "__aiter__", query.queryset_aiter),
        (QuerySet, "aiterator", query.aiterator),
        (QuerySet, "_fetch_all", query.fetch_all),
        (RawQuerySet, "__aiter__", query.raw_aiter),
        (Query, "get_compiler", query.get_compiler),
        (django_query, "aprefetch_related_objects", query.aprefetch_related_objects),
        (django_models, "aprefetch_related_objects", query.aprefetch_related_objects),
        # Django's sync code inside the bridge: cursors, transactions, signals.
        (BaseDatabaseWrapper, "cursor", wrapper.cursor),
        (BaseDatabaseWrapper, "ensure_connection", wrapper.ensure_connection),
        (
            BaseDatabaseWrapper,
            "close_if_unusable_or_obsolete",
            wrapper.close_if_unusable_or_obsolete,
        ),
        (BaseDatabaseWrapper, "get_autocommit", wrapper.get_autocommit),
        (BaseDatabaseWrapper, "on_commit", wrapper.on_commit),
        (BaseDatabaseWrapper, "get_rollback", wrapper.get_rollback),
        (BaseDatabaseWrapper, "set_rollback", wrapper.set_rollback),
        (BaseDatabaseWrapper, "savepoint", wrapper.savepoint),
        (BaseDatabaseWrapper, "savepoint_commit", wrapper.savepoint_commit),
        (BaseDatabaseWrapper, "savepoint_rollback", wrapper.savepoint_rollback),
        (Atomic, "__aenter__", transaction.atomic_aenter),
        (Atomic, "__aexit__", transaction.atomic_aexit),
        (Atomic, "__call__", transaction.atomic_call),
        (Atomic, "__enter__", transaction.atomic_enter),
        (Atomic, "__exit__", transaction.atomic_exit),
        (Signal, "send", signals.send),
        # Writes: the SQL of repeated one-object inserts, in the bridge.
        (SQLInsertCompiler, "as_sql", inserts.as_sql),
        # ... and of repeated saves of loaded objects (Model._do_update, under locking's).
        (SQLUpdateCompiler, "as_sql", updates.as_sql),
        # ... and of repeated deletes by primary key (QuerySet.adelete, learned natively).
        (SQLDeleteCompiler, "as_sql", deletes.as_sql),
        # ... and the COUNT / EXISTS of repeated queryset shapes (acount, aexists).
        (SQLCompiler, "as_sql", counts.as_sql),
        # Django's sync request hooks on the event loop, under django_asyncdb.asgi only.
        (SyncToAsync, "__call__", hooks.sync_to_async_call),
        (Signal, "asend", hooks.asend),
        # ... without a SyncToAsync object per hook call, where Django's request path
        # makes them (MiddlewareMixin.__acall__, ASGIHandler's response.close()).
        (django_deprecation, "sync_to_async", hooks.sync_to_async),
        (django_asgi, "sync_to_async", hooks.sync_to_async),
        # Optimistic locking: nothing changes for models without a VersionField.
        (Model, "_do_update", locking.do_update),
        (QuerySet, "update", locking.update),
        (QuerySet, "bulk_update", locking.bulk_update),
        # No hidden I/O.
        (ForwardManyToOneDescriptor, "get_object", related.forward_get_object),
        (ReverseOneToOneDescriptor, "__get__", related.reverse_one_to_one_get),
    ]
    patches += [
        (BaseDatabaseWrapper, name, wrapper._routed(name)) for name in wrapper.ROUTED_ATTRIBUTES
    ]
    try:
        from django.db.backends.sqlite3.operations import DatabaseOperations as SQLiteOps
    except ImportError:  # pragma: no cover - sqlite3 is part of Python
        pass
    else:
        original_quote = SQLiteOps._quote_params_for_last_executed_query
        patches.append(
            (
                SQLiteOps,
                "_quote_params_for_last_executed_query",
                testing.quote_params_for_log(original_quote),
            )
        )
    from django.db.backends.base.creation import BaseDatabaseCreation

    patches.append(
        (
            BaseDatabaseCreation,
            "destroy_test_db",
            testing.destroy_test_db_closing_pools(BaseDatabaseCreation.destroy_test_db),
        )
    )
    for wrapper_class in _backend_wrappers():
        if "chunked_cursor" in vars(wrapper_class):
            original = vars(wrapper_class)["chunked_cursor"]
            patches.append((wrapper_class, "chunked_cursor", wrapper.chunked_cursor_of(original)))
    patches += [(QuerySet, name, method) for name, method in query.METHODS.items()]
    patches += [(Model, name, method) for name, method in models.METHODS.items()]
    for factory in ("create_reverse_many_to_one_manager", "create_forward_many_to_many_manager"):
        original = getattr(related_descriptors, factory)
        patches.append((related_descriptors, factory, related.native_manager_factory(original)))
    return patches


# Attributes that exist only after install (new API, or instance attributes made
# properties), or while the setting asks for them (AWAITABLE_PATCHES), not replacements
# of existing class attributes.
NEW_ATTRIBUTES = {
    (QuerySet, "__await__"),
    (RawQuerySet, "__await__"),
    (Atomic, "__aenter__"),
    (Atomic, "__aexit__"),
    *((BaseDatabaseWrapper, name) for name in wrapper.ROUTED_ATTRIBUTES),
}

# Async twins added to django.db.transaction (savepoint functions do I/O).
ASYNC_TRANSACTION_FUNCTIONS = (
    "asavepoint",
    "asavepoint_commit",
    "asavepoint_create",
    "asavepoint_rollback",
)

# ``await qs``, opt-in: libraries that choose a code path by ``inspect.isawaitable(value)``
# (GraphQL resolvers, graphql-core's ``is_awaitable``) would otherwise evaluate every
# queryset early, or await it from sync code. Django's querysets are not awaitable.
AWAITABLE_PATCHES = (
    (QuerySet, "__await__", query.queryset_await),
    (RawQuerySet, "__await__", query.raw_await),
)

_installed: list[tuple[Any, str, Any]] = []


def install() -> None:
    """Rebind the entry points (idempotent)."""
    if _installed:
        return
    patches = _patches()
    _patch_generic_relations(patches)
    for owner, name, replacement in patches:
        if (owner, name) not in NEW_ATTRIBUTES and not hasattr(owner, name):
            raise RuntimeError(f"django_asyncdb: {owner.__qualname__}.{name} is missing")
        setattr(owner, name, replacement)
    for name in ASYNC_TRANSACTION_FUNCTIONS:
        setattr(django_transaction, name, getattr(transaction, name))
    _installed.extend(patches)


def set_awaitable_querysets(enabled: bool) -> None:
    """Give QuerySet and RawQuerySet ``__await__`` (opt-in), or leave them as Django's."""
    for owner, name, replacement in AWAITABLE_PATCHES:
        current = getattr(owner, name, None)
        if current not in (None, replacement):
            # Never shadow (or delete) an ``__await__`` a future Django might define.
            raise RuntimeError(f"django_asyncdb: {owner.__qualname__}.{name} already exists")
        if enabled:
            setattr(owner, name, replacement)
        elif current is not None:
            delattr(owner, name)
    # isinstance(qs, Awaitable), and so inspect.isawaitable, caches its answer per class;
    # the cached answer would outlive the change.
    _clear_abc_caches(Awaitable)


def _clear_abc_caches(abc: type) -> None:
    abc._abc_caches_clear()  # type: ignore[attr-defined]
    subclasses: list[type] = type.__subclasses__(abc)
    for subclass in subclasses:
        _clear_abc_caches(subclass)


def setting_changed(*, setting: str, **kwargs: Any) -> None:
    """Follow ``ASYNCDB_AWAITABLE_QUERYSETS`` when it changes (``override_settings``)."""
    if setting == conf.AWAITABLE_QUERYSETS:
        set_awaitable_querysets(conf.awaitable_querysets())


def _backend_wrappers() -> list[type]:
    """Django's wrapper classes of the native vendors (whose drivers are installed)."""
    from importlib import import_module

    classes: list[type] = [BaseDatabaseWrapper]
    for module in (
        "django.db.backends.sqlite3.base",
        "django.db.backends.postgresql.base",
        "django.db.backends.mysql.base",
    ):
        try:
            classes.append(import_module(module).DatabaseWrapper)
        except (ImportError, ImproperlyConfigured):  # no driver: no alias of that vendor
            continue
    return classes


def _patch_generic_relations(patches: list[tuple[Any, str, Any]]) -> None:
    """GenericRelation managers, when django.contrib.contenttypes is installed."""
    from django.apps import apps

    if not apps.is_installed("django.contrib.contenttypes"):
        return
    from django.contrib.contenttypes import fields

    factory: Callable[..., type] = fields.create_generic_related_manager
    patches.append(
        (fields, "create_generic_related_manager", related.native_manager_factory(factory))
    )
    # Django 6.1 moved the descriptor out of the field into GenericForeignKeyDescriptor.
    descriptor = getattr(fields, "GenericForeignKeyDescriptor", fields.GenericForeignKey)
    get = descriptor.__get__
    patches.append((descriptor, "__get__", related.generic_foreign_key_get_of(get)))
