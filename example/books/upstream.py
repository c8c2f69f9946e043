"""httpx clients for the external-API views: one per process (sync), one per loop (async)."""

import asyncio
import threading
import weakref

import httpx

TIMEOUT = httpx.Timeout(10.0)
# Enough connections for the study's 64 concurrent requests without queueing in httpx.
LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100)

_sync_client: httpx.Client | None = None
_sync_lock = threading.Lock()
_async_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = (
    weakref.WeakKeyDictionary()
)


def client() -> httpx.Client:
    """The process's shared sync client (httpx.Client is thread-safe)."""
    global _sync_client
    with _sync_lock:
        if _sync_client is None:
            _sync_client = httpx.Client(timeout=TIMEOUT, limits=LIMITS)
        return _sync_client


def aclient() -> httpx.AsyncClient:
    """The running event loop's shared async client (an AsyncClient is bound to one loop)."""
    loop = asyncio.get_running_loop()
    found = _async_clients.get(loop)
    if found is None or found.is_closed:
        found = _async_clients[loop] = httpx.AsyncClient(timeout=TIMEOUT, limits=LIMITS)
    return found


async def aclose_clients() -> None:
    """Close the running loop's async client (lifespan shutdown)."""
    found = _async_clients.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.aclose()
