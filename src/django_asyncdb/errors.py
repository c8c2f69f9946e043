"""Errors raised by django_asyncdb, and the mapping of driver errors to Django's.

Every new error subclasses the nearest Django class, so existing ``except``
clauses keep working::

    django.db.OperationalError
        PoolTimeout             no pooled connection became free in time
        PoolClosed              the pool was closed while a task waited
    django.db.NotSupportedError
        NotSupportedYet         a Django feature the native path does not cover yet
    django.core.exceptions.SynchronousOnlyOperation
        RelationNotLoaded       an unloaded relation was read in async code
        SyncCallInAsyncContext  a sync ORM/transaction call was made in async code

Driver exceptions (psycopg, sqlite3 via aiosqlite, asyncmy) become Django's own
``django.db`` exceptions through :func:`translate`, chained with ``from``.
"""

from __future__ import annotations

from types import ModuleType

from django.core.exceptions import SynchronousOnlyOperation
from django.db import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
)

__all__ = [
    "NotSupportedYet",
    "PoolClosed",
    "PoolTimeout",
    "RelationNotLoaded",
    "SyncCallInAsyncContext",
    "translate",
]

# Most specific first: the first match wins, as in Django's DatabaseErrorWrapper.
_DJANGO_ERRORS: tuple[type[Error], ...] = (
    DataError,
    OperationalError,
    IntegrityError,
    InternalError,
    ProgrammingError,
    NotSupportedError,
    DatabaseError,
    InterfaceError,
    Error,
)


class PoolTimeout(OperationalError):
    """No connection of the pool became free within the configured timeout."""


class PoolClosed(OperationalError):
    """The pool was closed, or closed while a task waited for a connection."""


class NotSupportedYet(NotSupportedError):
    """A Django feature the native async path does not cover yet; says what to use instead."""


class RelationNotLoaded(SynchronousOnlyOperation):
    """An unloaded relation was read in async code, which would hide a query."""


class SyncCallInAsyncContext(SynchronousOnlyOperation):
    """A blocking ORM or transaction call was made from the event loop."""


def translate(exc: BaseException, driver: ModuleType) -> Error | None:
    """Return the Django exception for a driver exception, or None if it is not one."""
    if isinstance(exc, Error):
        return None
    for django_class in _DJANGO_ERRORS:
        driver_class = getattr(driver, django_class.__name__, None)
        if driver_class is not None and isinstance(exc, driver_class):
            error = django_class(*exc.args)
            error.__cause__ = exc
            return error
    return None
