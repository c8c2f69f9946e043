"""Django's cache tests (``cache.tests.RedisCacheTests``) on django_asyncdb.cache.RedisCache.

``--cache sync``: Django's RedisCache is django_asyncdb's for the run; the tests call its
sync methods (Django's, with the ``_cache`` client the package chooses).

``--cache async``: the same tests drive the async methods: each sync method of the
backend the tests get runs its async twin on an event loop of its own thread and returns
the result, so every assertion of Django's suite checks what ``aget``, ``aset``, ``aadd``,
``aincr``... return and store.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from django_asyncdb import bridge
from django_asyncdb.cache import RedisCache

LOCATION = "redis://127.0.0.1:6379"
OPTIONS = {"db": 12}  # a Redis database of the run's own (its tests flush it)

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def _run(coroutine: Any) -> Any:
    global _loop
    with _lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, daemon=True).start()
    return asyncio.run_coroutine_threadsafe(coroutine, _loop).result()


def _driven(name: str) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if bridge.in_bridge():  # the async twin runs Django's sync method in the bridge
            return getattr(super(AsyncDrivenRedisCache, self), name)(*args, **kwargs)
        return _run(getattr(self, "a" + name)(*args, **kwargs))

    method.__name__ = name
    return method


class AsyncDrivenRedisCache(RedisCache):
    """The package's backend with each sync method answered by its async twin."""


for _name in (
    "add",
    "get",
    "set",
    "touch",
    "delete",
    "get_many",
    "has_key",
    "incr",
    "set_many",
    "delete_many",
    "clear",
):
    # (decr, get_or_set, incr_version, decr_version: Django's, built on the methods above;
    # overridden here, Django 6.1's async twins would send them to a thread instead.)
    setattr(AsyncDrivenRedisCache, _name, _driven(_name))


def install(mode: str) -> None:
    """Put the backend of ``mode`` in the place of Django's RedisCache."""
    import django.core.cache.backends.redis

    django.core.cache.backends.redis.RedisCache = (  # type: ignore[misc]
        RedisCache if mode == "sync" else AsyncDrivenRedisCache
    )
