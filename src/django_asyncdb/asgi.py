"""ASGI lifespan support: close the pools when the server shuts down.

Django's ASGI handler does not speak the lifespan protocol. Wrap it::

    from django.core.asgi import get_asgi_application
    from django_asyncdb.asgi import with_lifespan

    application = with_lifespan(get_asgi_application())
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .connections import close_pools

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["with_lifespan"]


def with_lifespan(app: ASGIApp) -> ASGIApp:
    """Answer lifespan events for ``app``; on shutdown, close every pool of this loop."""

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await close_pools()
                except Exception as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    return application
