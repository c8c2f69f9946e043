"""ASGI entry point (uvicorn with lifespan on).

On lifespan shutdown the shared httpx clients are closed, then django_asyncdb's
``with_lifespan`` closes the database pools.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bookshop.settings")
django_application = get_asgi_application()

from books import upstream  # noqa: E402

from django_asyncdb.asgi import with_lifespan  # noqa: E402

_with_pools = with_lifespan(django_application)


async def application(scope, receive, send):  # type: ignore[no-untyped-def]
    """Django with lifespan: close the upstream clients, then the pools, on shutdown."""
    if scope["type"] != "lifespan":
        await _with_pools(scope, receive, send)
        return

    async def receive_and_close():  # type: ignore[no-untyped-def]
        message = await receive()
        if message["type"] == "lifespan.shutdown":
            await upstream.aclose_clients()
        return message

    await _with_pools(scope, receive_and_close, send)
