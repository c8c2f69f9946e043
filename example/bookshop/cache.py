"""One Redis connection pool per server for every cache object of the process.

Django's RedisCache builds a connection pool with each cache object, and Django builds a
cache object per context: under ASGI, per request. Every ASGI request would then open a new
Redis connection (an open Django issue, pull request #18459). Given as the cache's
``pool_class``, this class hands every cache object the process's pool for that server.
"""

import threading
from typing import Any

import redis


class SharedConnectionPool(redis.ConnectionPool):
    """``from_url`` returns the same pool for the same URL and options."""

    _shared: dict[str, redis.ConnectionPool] = {}
    _lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> redis.ConnectionPool:  # type: ignore[override]
        key = repr((url, sorted(kwargs.items())))
        with cls._lock:
            pool = cls._shared.get(key)
            if pool is None:
                pool = cls._shared[key] = super().from_url(url, **kwargs)
            return pool
