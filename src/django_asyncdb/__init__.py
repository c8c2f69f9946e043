"""django_asyncdb: Django's ORM executed natively on asyncio database drivers.

Add ``"django_asyncdb"`` to ``INSTALLED_APPS``; Django's own async API then runs on
native connections. See the README for what is covered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "NotSupportedYet",
    "PoolClosed",
    "PoolTimeout",
    "RelationNotLoaded",
    "StaleObjectError",
    "SyncCallInAsyncContext",
    "__version__",
    "aget_related",
    "asavepoint",
    "asavepoint_commit",
    "asavepoint_create",
    "asavepoint_rollback",
    "close_pools",
    "cursor",
]

if TYPE_CHECKING:
    from .connections import close_pools
    from .cursors import cursor
    from .errors import (
        NotSupportedYet,
        PoolClosed,
        PoolTimeout,
        RelationNotLoaded,
        StaleObjectError,
        SyncCallInAsyncContext,
    )
    from .related import aget_related
    from .transaction import (
        asavepoint,
        asavepoint_commit,
        asavepoint_create,
        asavepoint_rollback,
    )

_LAZY = {
    "close_pools": "connections",
    "cursor": "cursors",
    "NotSupportedYet": "errors",
    "PoolClosed": "errors",
    "PoolTimeout": "errors",
    "RelationNotLoaded": "errors",
    "StaleObjectError": "errors",
    "SyncCallInAsyncContext": "errors",
    "aget_related": "related",
    "asavepoint": "transaction",
    "asavepoint_commit": "transaction",
    "asavepoint_create": "transaction",
    "asavepoint_rollback": "transaction",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that importing the package (e.g. from settings) does not import Django's ORM.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
