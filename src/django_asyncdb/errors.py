"""Errors raised by django_asyncdb, and the mapping of driver errors to Django's.

Every new error subclasses the nearest Django class, so existing ``except``
clauses keep working::

    django.db.OperationalError
        PoolTimeout             no pooled connection became free in time
        PoolClosed              the pool was closed while a task waited
    django.db.DatabaseError
        StaleObjectError        a versioned save found another writer's version
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
from typing import Any

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
    "StaleObjectError",
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


class StaleObjectError(DatabaseError):
    """A save of an object with a ``VersionField`` found its row changed (or deleted) by
    another writer since the object was read: nothing was written."""

    def __init__(self, model: type, pk: Any, version: Any) -> None:
        self.model, self.pk, self.version = model, pk, version
        super().__init__(
            f"{model.__name__} with pk {pk!r} was changed or deleted by another writer since "
            f"this object was read at version {version!r}; nothing was written. Re-read it "
            "and apply the change again (django_asyncdb.locking.asave_with_retry does)."
        )

    def __reduce__(self) -> Any:
        return type(self), (self.model, self.pk, self.version)


class NotSupportedYet(NotSupportedError):
    """A Django feature the native async path does not cover yet; says what to use instead."""


class RelationNotLoaded(SynchronousOnlyOperation):
    """An unloaded relation was read in async code, which would hide a query."""


class SyncCallInAsyncContext(SynchronousOnlyOperation):
    """A blocking ORM or transaction call was made from the event loop."""


# Django's sync ORM methods with an async twin, by the name of the method doing I/O.
_TWINS = {
    "aggregate": "aaggregate()",
    "bulk_create": "abulk_create()",
    "bulk_update": "abulk_update()",
    "contains": "acontains()",
    "count": "acount()",
    "create": "acreate()",
    "delete": "adelete()",
    "earliest": "aearliest()",
    "exists": "aexists()",
    "explain": "aexplain()",
    "first": "afirst()",
    "get": "aget()",
    "get_or_create": "aget_or_create()",
    "in_bulk": "ain_bulk()",
    "iterator": "aiterator() ('async for')",
    "last": "alast()",
    "latest": "alatest()",
    "refresh_from_db": "arefresh_from_db()",
    "save": "asave()",
    "update": "aupdate()",
    "update_or_create": "aupdate_or_create()",
}


def async_twin_hint() -> str:
    """The async twin of the Django ORM method on the stack that made a sync call
    from the event loop, as a sentence ('' when none is found)."""
    import sys

    frame = sys._getframe(1)
    found = None
    while frame is not None:
        code = frame.f_code
        if code.co_name in _TWINS and "django" in code.co_filename.replace("\\", "/").split("/"):
            found = code.co_name  # keep going: the outermost Django method is the user's call
        frame = frame.f_back  # type: ignore[assignment]
    if found is None:
        return ""
    return f" In async code, call {_TWINS[found]} instead of {found}()."


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
