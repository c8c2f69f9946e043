"""A Redis cache backend whose async methods are native: no thread per call.

In ``settings.py``::

    CACHES = {
        "default": {
            "BACKEND": "django_asyncdb.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/0",
        }
    }

It is Django's ``RedisCache``, with the same ``LOCATION`` and ``OPTIONS``. Its sync
methods are Django's, on redis-py's sync client, as before. Django's async methods
(``aget``, ``aset``, ...) run the sync method in a thread (``sync_to_async``); here they
run Django's own sync method in the bridge (:mod:`django_asyncdb.bridge`), on the event
loop, with a client of redis-py's asyncio API in place of the sync one: every Redis
command Django's code sends is awaited in the calling task. Keys, versions, the
serializer, timeouts and the commands themselves are therefore exactly Django's, and
entries written by either side are read by the other (switching backends keeps the
cache valid). Sync cache calls made inside the bridge (a model signal's receiver, the
request hooks the package's ASGI handler runs on the loop) are native the same way.

The asyncio connection pools are per event loop and per ``LOCATION``/``OPTIONS``,
shared by every instance of the backend (Django makes one instance per thread and per
request context): they close on ASGI lifespan shutdown (:func:`close_caches`, which the
package's handler calls) and when ``asyncio.run`` ends the loop. ``OPTIONS`` that name a
sync class have their asyncio twin used: ``pool_class`` (``redis.ConnectionPool``,
``redis.BlockingConnectionPool``) and ``parser_class``; for another pool class, give its
asyncio counterpart as ``OPTIONS["async_pool_class"]``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis
import redis.asyncio
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from . import bridge
from .connections import watch_loop_end
from .sockets import InputWatch

__all__ = ["RedisCache", "close_caches"]

# OPTIONS read here, never passed to Django's sync client.
_OWN_OPTIONS = ("async_pool_class",)


def _dropped(connection: Any) -> bool:
    """An idle connection whose socket has something to read: the server's goodbye (a
    restart, CLIENT KILL, an idle timeout), which the loop may not have read yet."""
    writer = getattr(connection, "_writer", None)
    sock = writer.get_extra_info("socket") if writer is not None else None
    if sock is None:
        return False
    fd = sock.fileno()
    watch = getattr(connection, "_asyncdb_watch", None)  # kept on redis-py's connection
    if watch is None or watch.fd != fd:  # (a reconnect gets a new socket)
        watch = connection._asyncdb_watch = InputWatch(fd)
    return watch.pending()


class _SeesDrops:
    """redis-py's asyncio pools check a connection before handing it out, but only through
    the stream the loop fills: a goodbye that arrived since the loop last looked passes, and
    the command fails with ConnectionError where the sync pool, which asks the socket,
    reconnects. This asks the socket too."""

    async def ensure_connection(self, connection: Any) -> None:
        if _dropped(connection):
            await connection.disconnect()
        await super().ensure_connection(connection)  # type: ignore[misc]


class _ConnectionPool(_SeesDrops, redis.asyncio.ConnectionPool):
    """redis.asyncio.ConnectionPool that sees a dropped connection as the sync one does."""


class _BlockingConnectionPool(_SeesDrops, redis.asyncio.BlockingConnectionPool):
    """redis.asyncio.BlockingConnectionPool that sees a dropped connection as the sync one does."""


_POOLS: dict[Any, type] = {
    redis.ConnectionPool: _ConnectionPool,
    redis.BlockingConnectionPool: _BlockingConnectionPool,
}
# redis-py's sync parsers and their asyncio twins, by name (the private classes move).
_PARSERS = {
    "_RESP2Parser": "_AsyncRESP2Parser",
    "_RESP3Parser": "_AsyncRESP3Parser",
    "_HiredisParser": "_AsyncHiredisParser",
}


class _Awaiting:
    """A redis-py asyncio client (or pipeline) as Django's sync client code sees it in
    the bridge: a command's coroutine is awaited in the task, and its result returned."""

    __slots__ = ("_target",)

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if asyncio.iscoroutine(result):
                return bridge.await_(result)
            if isinstance(result, redis.asyncio.client.Pipeline):
                return _Awaiting(result)
            return result

        return call


class _LoopClient(RedisCacheClient):
    """Django's RedisCacheClient (server choice, pools, serializer, commands) on redis-py's
    asyncio API, for one event loop."""

    _pool_class: Any
    _pools: dict[int, Any]
    _pool_options: dict[str, Any]

    def __init__(self, servers: list[str], options: dict[str, Any]) -> None:
        options = dict(options)
        async_pool = options.pop("async_pool_class", None)
        super().__init__(servers, **options)
        # Django makes a client per call (for the sync client, per cache object and thread);
        # an asyncio client is as safe to share between tasks as its pool is, and making
        # one costs more than the command (redis-py fills a table of reply callbacks).
        self._by_pool: dict[int, Any] = {}
        self._client = self._shared_client
        self._pool_class = _async_pool_class(self._pool_class, async_pool)
        parser = self._pool_options.get("parser_class")
        self._pool_options["parser_class"] = _async_parser_class(parser)

    def _shared_client(self, connection_pool: Any) -> Any:
        client = self._by_pool.get(id(connection_pool))
        if client is None:
            client = self._by_pool[id(connection_pool)] = _Awaiting(
                redis.asyncio.Redis(connection_pool=connection_pool)
            )
        return client

    async def aclose(self) -> None:
        self._by_pool = {}
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


def _async_pool_class(sync: Any, given: Any) -> Any:
    if isinstance(given, str):
        given = import_string(given)
    if given is not None:
        return given
    if isinstance(sync, type) and issubclass(sync, redis.asyncio.ConnectionPool):
        return sync
    found = _POOLS.get(sync)
    if found is None:
        raise ImproperlyConfigured(
            f"django_asyncdb.cache.RedisCache: no asyncio pool class known for "
            f"OPTIONS['pool_class'] {sync!r}; give one as OPTIONS['async_pool_class']."
        )
    return found


def _async_parser_class(sync: Any) -> Any:
    if sync is None:
        return redis.asyncio.connection._AsyncRESP2Parser  # what the sync side speaks
    name = getattr(sync, "__name__", "")
    if name.startswith("_Async") or name == "AsyncPushNotificationsParser":
        return sync
    twin = getattr(redis.asyncio.connection, _PARSERS.get(name, ""), None)
    if twin is None:
        raise ImproperlyConfigured(
            f"django_asyncdb.cache.RedisCache: no asyncio parser known for "
            f"OPTIONS['parser_class'] {sync!r}."
        )
    return twin


# loop -> {(servers, options): client}: shared by every instance of the backend.
_clients: dict[asyncio.AbstractEventLoop, dict[str, _LoopClient]] = {}
_validated: set[str] = set()
# (LOCATION, id of OPTIONS) -> (OPTIONS, a copy, the options for Django's client, the key).
_derived: dict[Any, tuple[Any, dict[str, Any], dict[str, Any], str]] = {}


async def _close(clients: dict[str, _LoopClient] | None) -> None:
    for client in (clients or {}).values():
        await client.aclose()


async def _closed_at_loop_end(loop: asyncio.AbstractEventLoop, running: bool) -> None:
    clients = _clients.pop(loop, None)
    if running:  # the loop still runs: close the connections properly (else their
        await _close(clients)  # sockets close with the transports)


async def close_caches() -> None:
    """Close the running event loop's Redis connections of every native cache (ASGI
    lifespan shutdown; the package's ASGI handler calls it)."""
    await _close(_clients.pop(asyncio.get_running_loop(), None))


class RedisCache(DjangoRedisCache):
    """Django's RedisCache with native async methods (see the module's docstring)."""

    _options: dict[str, Any]

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        given = self._options
        # Django makes an instance per request context: what is derived from LOCATION and
        # OPTIONS is kept per OPTIONS dict (the settings' own; a new empty one each time when
        # there is none), while it holds the same items (settings changed inside an item's
        # value, in place, are not seen: settings are not meant to change so).
        memo = (server, id(given) if given else None) if isinstance(server, str) else None
        found = _derived.get(memo) if memo else None
        if found is None or (given and found[0] is not given) or found[1] != given:
            options = dict(given)
            own = {k: v for k, v in options.items() if k not in _OWN_OPTIONS}
            key = repr((list(self._servers), sorted(options.items(), key=repr)))
            found = (given, options, own, key)
            if memo:
                if len(_derived) >= 64:
                    _derived.clear()
                _derived[memo] = found
        _, self._all_options, self._options, self._key = found
        self._validate()

    def _validate(self) -> None:
        """Fail at once on OPTIONS the asyncio side cannot take, not at the first aget()
        (once per LOCATION and OPTIONS: Django makes an instance per request context)."""
        if self._key in _validated:
            return
        client = RedisCacheClient(self._servers, **self._options)
        _async_pool_class(client._pool_class, self._all_options.get("async_pool_class"))
        _async_parser_class(client._pool_options.get("parser_class"))
        _validated.add(self._key)

    @property
    def _cache(self) -> RedisCacheClient:
        if bridge.in_bridge():
            return self._loop_client()
        sync = self.__dict__.get("_sync_client")
        if sync is None:
            sync = self.__dict__["_sync_client"] = self._class(self._servers, **self._options)
        return sync

    def _loop_client(self) -> _LoopClient:
        loop = asyncio.get_running_loop()
        clients = _clients.get(loop)
        if clients is None:
            clients = _clients[loop] = {}
            watch_loop_end(_closed_at_loop_end)
        client = clients.get(self._key)
        if client is None:
            client = clients[self._key] = _LoopClient(self._servers, self._all_options)
        return client

    async def aadd(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> bool:
        return await bridge.run(self.add, key, value, timeout, version)

    async def aget(self, key: Any, default: Any = None, version: Any = None) -> Any:
        return await bridge.run(self.get, key, default, version)

    async def aset(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> None:
        await bridge.run(self.set, key, value, timeout, version)

    async def atouch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> bool:
        return await bridge.run(self.touch, key, timeout, version)

    async def adelete(self, key: Any, version: Any = None) -> bool:
        return await bridge.run(self.delete, key, version)

    async def aget_many(self, keys: Any, version: Any = None) -> dict[Any, Any]:
        return await bridge.run(self.get_many, keys, version)

    async def ahas_key(self, key: Any, version: Any = None) -> bool:
        return await bridge.run(self.has_key, key, version)

    async def aincr(self, key: Any, delta: int = 1, version: Any = None) -> int:
        return await bridge.run(self.incr, key, delta, version)

    async def aset_many(
        self, data: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> list[Any]:
        return await bridge.run(self.set_many, data, timeout, version)

    async def adelete_many(self, keys: Any, version: Any = None) -> None:
        await bridge.run(self.delete_many, keys, version)

    async def aclear(self) -> bool:
        return await bridge.run(self.clear)

    async def aclose(self, **kwargs: Any) -> None:
        await bridge.run(self.close, **kwargs)
