"""Every Django entry point django_asyncdb rebinds, in one place.

``install()`` runs from ``AppConfig.ready()``. ``PATCHES`` is checked by a test, so a
Django upgrade that moves one of these fails loudly instead of silently falling back
to threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction as django_transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.fields.related_descriptors import (
    ForwardManyToOneDescriptor,
    ReverseOneToOneDescriptor,
)
from django.db.models.query import QuerySet, RawQuerySet
from django.db.models.sql.compiler import SQLCompiler
from django.db.models.sql.query import Query
from django.db.transaction import Atomic

from . import query, related, transaction, wrapper


def _patches() -> list[tuple[type, str, Callable[..., Any]]]:
    patches: list[tuple[type, str, Callable[..., Any]]] = [
        # Read path.
        (QuerySet, "__aiter__", query.queryset_aiter),
        (QuerySet, "__await__", query.queryset_await),
        (QuerySet, "aiterator", query.aiterator),
        (QuerySet, "_fetch_all", query.fetch_all),
        (RawQuerySet, "__aiter__", query.raw_aiter),
        (RawQuerySet, "__await__", query.raw_await),
        (SQLCompiler, "execute_sql", query.execute_sql),
        (Query, "get_compiler", query.get_compiler),
        # Transactions.
        (Atomic, "__aenter__", transaction.atomic_aenter),
        (Atomic, "__aexit__", transaction.atomic_aexit),
        (Atomic, "__call__", transaction.atomic_call),
        (Atomic, "__enter__", transaction.atomic_enter),
        (BaseDatabaseWrapper, "on_commit", wrapper.on_commit),
        (BaseDatabaseWrapper, "get_rollback", wrapper.get_rollback),
        (BaseDatabaseWrapper, "set_rollback", wrapper.set_rollback),
        (BaseDatabaseWrapper, "savepoint", wrapper.savepoint),
        (BaseDatabaseWrapper, "savepoint_commit", wrapper.savepoint_commit),
        (BaseDatabaseWrapper, "savepoint_rollback", wrapper.savepoint_rollback),
        (BaseDatabaseWrapper, "get_autocommit", wrapper.get_autocommit),
        (BaseDatabaseWrapper, "ensure_connection", wrapper.ensure_connection),
        # No hidden I/O.
        (ForwardManyToOneDescriptor, "get_object", related.forward_get_object),
        (ReverseOneToOneDescriptor, "__get__", related.reverse_one_to_one_get),
    ]
    patches += [(QuerySet, name, method) for name, method in query.REPLAYED.items()]
    return patches


# Attributes that exist only after install (new API, not replacements).
NEW_ATTRIBUTES = {
    (QuerySet, "__await__"),
    (RawQuerySet, "__await__"),
    (Atomic, "__aenter__"),
    (Atomic, "__aexit__"),
}

# Async twins added to django.db.transaction (savepoint functions do I/O).
ASYNC_TRANSACTION_FUNCTIONS = (
    "asavepoint",
    "asavepoint_commit",
    "asavepoint_create",
    "asavepoint_rollback",
)

_installed = False


def install() -> None:
    """Rebind the entry points (idempotent)."""
    global _installed
    if _installed:
        return
    for owner, name, replacement in _patches():
        if (owner, name) not in NEW_ATTRIBUTES and not hasattr(owner, name):
            raise RuntimeError(f"django_asyncdb: {owner.__qualname__}.{name} is missing")
        setattr(owner, name, replacement)
    for name in ASYNC_TRANSACTION_FUNCTIONS:
        setattr(django_transaction, name, getattr(transaction, name))
    _installed = True
