"""httpx clients for the external-API views: one per process (sync), one per loop (async)."""

import asyncio
import os
import threading
import weakref

import httpx

TIMEOUT = httpx.Timeout(10.0)
# Concurrent upstream requests per event loop. Past a few dozen connections or waiters,
# httpx's async pool costs more CPU per request than it saves: on the study's machine 64
# tasks on one AsyncClient made 178 requests/s through 64 connections, and 608 requests/s
# when a semaphore let 32 at a time into a pool of 32 (50 ms upstream delay).
CONCURRENCY = int(os.environ.get("UPSTREAM_CONCURRENCY", "32"))
LIMITS = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)

_sync_client: httpx.Client | None = None
_sync_lock = threading.Lock()
_async_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncUpstream]" = (
    weakref.WeakKeyDictionary()
)


class AsyncUpstream:
    """One loop's AsyncClient, entered at most CONCURRENCY requests at a time."""

    def __init__(self) -> None:
        self.client = httpx.AsyncClient(timeout=TIMEOUT, limits=LIMITS)
        self.slots = asyncio.Semaphore(CONCURRENCY)

    async def get(self, url: str) -> httpx.Response:
        async with self.slots:
            return await self.client.get(url)


def client() -> httpx.Client:
    """The process's shared sync client (httpx.Client is thread-safe)."""
    global _sync_client
    with _sync_lock:
        if _sync_client is None:
            _sync_client = httpx.Client(timeout=TIMEOUT, limits=LIMITS)
        return _sync_client


def aclient() -> AsyncUpstream:
    """The running event loop's shared async client (an AsyncClient is bound to one loop)."""
    loop = asyncio.get_running_loop()
    found = _async_clients.get(loop)
    if found is None or found.client.is_closed:
        found = _async_clients[loop] = AsyncUpstream()
    return found


async def aclose_clients() -> None:
    """Close the running loop's async client (lifespan shutdown)."""
    found = _async_clients.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.client.aclose()
