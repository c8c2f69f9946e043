"""ASGI entry point (uvicorn with lifespan on).

With django_asyncdb (the default): its handler, which is Django's with lifespan (the database
pools close on shutdown) and Django's own sync middleware hooks run on the event loop. With
ASGI_HANDLER=django (the default when ASYNCDB=0): Django's own handler, wrapped in
``with_lifespan``. On lifespan shutdown the shared httpx clients are closed first. Static
files (/static/) are served by Django's staticfiles handler, ahead of the middleware: the
example has no separate web server.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bookshop.settings")

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application as django_asgi_application

from django_asyncdb.asgi import get_asgi_application, with_lifespan

if settings.ASGI_HANDLER == "asyncdb":
    _serve = get_asgi_application()
else:
    _serve = with_lifespan(django_asgi_application())

from books import upstream

_serve = ASGIStaticFilesHandler(_serve)  # passes lifespan and other paths on to _serve


async def application(scope, receive, send):  # type: ignore[no-untyped-def]
    """The bookshop; on lifespan shutdown the upstream clients close, then the pools."""
    if scope["type"] != "lifespan":
        await _serve(scope, receive, send)
        return

    async def receive_and_close():  # type: ignore[no-untyped-def]
        message = await receive()
        if message["type"] == "lifespan.shutdown":
            await upstream.aclose_clients()
        return message

    await _serve(scope, receive_and_close, send)
