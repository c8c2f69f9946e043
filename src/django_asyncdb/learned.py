"""Where learned statements are kept (get, reads, inserts, updates, deletes).

Per database alias and its settings, shared by every Django connection wrapper of the
alias: Django makes a wrapper per thread and per async context, which under ASGI is one
per request, so statements kept per wrapper were learned again by every request, and a
statement's compiler, which refers to its wrapper, kept each request's wrapper alive.
A store is replaced when the alias's settings are (``override_settings(DATABASES=...)``
gives new ones) and emptied when it reaches ``MAX_SHAPES`` entries. A compiler learned
on one wrapper is used through :func:`bound`: a copy on the caller's wrapper.
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar

from django.db.models.sql.compiler import SQLCompiler

__all__ = ["MAX_SHAPES", "bound", "forget", "store"]

MAX_SHAPES = 1024
C = TypeVar("C", bound=SQLCompiler)

# (kind, alias) -> (the alias's settings dict, key -> learned statement or None)
_stores: dict[tuple[str, str], tuple[Any, dict[Any, Any]]] = {}


def store(kind: str, wrapper: Any) -> dict[Any, Any]:
    """The statements of one kind learned for ``wrapper``'s alias and settings."""
    key = (kind, wrapper.alias)
    entry = _stores.get(key)
    if entry is None or entry[0] is not wrapper.settings_dict:
        entry = _stores[key] = (wrapper.settings_dict, {})
    found = entry[1]
    if len(found) >= MAX_SHAPES:
        found.clear()
    return found


def bound(compiler: C, wrapper: Any) -> C:
    """A copy of a learned compiler that compiles and converts on ``wrapper``."""
    own = copy.copy(compiler)
    own.connection = wrapper
    return own


def forget() -> None:
    """Drop every learned statement: the next use of each shape runs Django's path."""
    _stores.clear()
