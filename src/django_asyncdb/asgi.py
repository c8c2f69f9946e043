"""Serving Django under ASGI: lifespan (pools closed on shutdown) and no thread per hook.

The whole of it, in ``asgi.py``::

    from django_asyncdb.asgi import get_asgi_application

    application = get_asgi_application()

That is Django's own ``ASGIHandler``, with these differences:

- it answers the ASGI lifespan protocol and closes the event loop's database pools (and
  the native Redis cache's connections, :mod:`django_asyncdb.cache`) on shutdown;
- Django's sync pieces around the view (middleware hooks, the request signals'
  receivers, the response's ``close()``) run on the event loop when they are known to do
  no blocking I/O but database queries, which then run natively (see
  :mod:`django_asyncdb.hooks`). Django would run each of them in a thread. Sync views,
  your own ``sync_to_async`` calls and any other middleware still run in a thread.
- a request with no body is read without a spooled temporary file;
- the tasks of one request (``asyncio.gather`` in a view) share Django's connection
  wrapper per alias, as the queries of one request share one thread's wrapper under
  Django's own async ORM, instead of building one each.

An application that only needs the lifespan part can wrap any ASGI application::

    application = with_lifespan(django.core.asgi.get_asgi_application())
"""

from __future__ import annotations

import io
import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import django
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler

from . import conf, hooks
from .connections import close_pools, share_wrappers, stop_sharing

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["ASGIHandler", "get_asgi_application", "with_lifespan"]


async def _close_caches() -> None:
    """The native Redis cache's connections of this loop (only if that backend is used)."""
    cache = sys.modules.get("django_asyncdb.cache")
    if cache is not None:
        await cache.close_caches()


async def _lifespan(receive: Receive, send: Send) -> None:
    """Answer one lifespan session; the pools close when the server stops."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                await close_pools()
                await _close_caches()
            except Exception as exc:
                await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.shutdown.complete"})
            return


def with_lifespan(app: ASGIApp) -> ASGIApp:
    """Wrap an ASGI application so that lifespan shutdown closes every pool."""

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        await _lifespan(receive, send)

    return application


class ASGIHandler(DjangoASGIHandler):
    """Django's ASGI handler, with lifespan, and its safe sync hooks run on the loop.

    ``loop_safe`` names (dotted paths) more middleware classes and request signal
    receivers whose sync code does no blocking I/O other than database queries.
    """

    def __init__(self, *, loop_safe: Iterable[str] = ()) -> None:
        conf.check_app("django_asyncdb.asgi's handler")
        self.loop_hooks = hooks.LoopHooks(loop_safe)
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        token = hooks.serving(self.loop_hooks)
        shared = share_wrappers()  # the request's tasks share Django's database wrappers
        try:
            await super().__call__(scope, receive, send)
        finally:
            stop_sharing(shared)
            hooks.done(token)

    async def read_body(self, receive: Receive) -> Any:
        """Django's, but a request whose first message says it has no body (most GETs)
        gets an empty in-memory file instead of a spooled temporary file."""
        message = await receive()
        if (
            message["type"] == "http.request"
            and not message.get("body")
            and not message.get("more_body", False)
        ):
            return io.BytesIO()
        return await super().read_body(_replaying(message, receive))


def _replaying(first: Message, receive: Receive) -> Receive:
    """``receive``, giving ``first`` (already received) once before what comes next."""
    pending = [first]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def get_asgi_application(*, loop_safe: Iterable[str] = ()) -> ASGIHandler:
    """Set Django up and return its ASGI handler, as ``django.core.asgi`` does, with ours."""
    django.setup(set_prefix=False)
    return ASGIHandler(loop_safe=loop_safe)
