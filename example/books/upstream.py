"""httpx clients for the external-API views: one per process (sync), a few per loop (async)."""

import asyncio
import os
import threading
import weakref

import httpx

TIMEOUT = httpx.Timeout(10.0)
# Upstream requests in flight per event loop, spread over SHARDS AsyncClients. httpx's async
# pool revisits every connection and every waiting request on each event, so the CPU per
# request of one client grows with its size (measure it: python example/upstream_clients.py).
# Requests past the limit wait here, in a queue, not inside httpx.
SHARDS = int(os.environ.get("UPSTREAM_SHARDS", "8"))
PER_SHARD = int(os.environ.get("UPSTREAM_CONNECTIONS_PER_SHARD", "8"))
LIMITS = httpx.Limits(max_connections=PER_SHARD, max_keepalive_connections=PER_SHARD)

_sync_client: httpx.Client | None = None
_sync_lock = threading.Lock()
_async_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncUpstream]" = (
    weakref.WeakKeyDictionary()
)


class AsyncUpstream:
    """One loop's AsyncClients; a request borrows a free connection slot of one of them."""

    def __init__(self, shards: int = SHARDS, per_shard: int = PER_SHARD) -> None:
        limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
        self.clients = [httpx.AsyncClient(timeout=TIMEOUT, limits=limits) for _ in range(shards)]
        # One entry per connection slot; last in, first out, so warm connections are reused.
        self.slots: asyncio.LifoQueue[int] = asyncio.LifoQueue()
        for _ in range(per_shard):
            for shard in range(shards):
                self.slots.put_nowait(shard)
        self.closed = False

    async def get(self, url: str) -> httpx.Response:
        shard = await self.slots.get()
        try:
            return await self.clients[shard].get(url)
        finally:
            self.slots.put_nowait(shard)

    async def aclose(self) -> None:
        self.closed = True
        for client in self.clients:
            await client.aclose()


def client() -> httpx.Client:
    """The process's shared sync client (httpx.Client is thread-safe)."""
    global _sync_client
    with _sync_lock:
        if _sync_client is None:
            _sync_client = httpx.Client(timeout=TIMEOUT, limits=LIMITS)
        return _sync_client


def aclient() -> AsyncUpstream:
    """The running event loop's shared async clients (an AsyncClient is bound to one loop)."""
    loop = asyncio.get_running_loop()
    found = _async_clients.get(loop)
    if found is None or found.closed:
        found = _async_clients[loop] = AsyncUpstream()
    return found


async def aclose_clients() -> None:
    """Close the running loop's async clients (lifespan shutdown)."""
    found = _async_clients.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.aclose()
