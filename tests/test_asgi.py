"""ASGI: lifespan shutdown closes the pools; requests pass through to Django."""

import asyncio

from django.core.asgi import get_asgi_application

from conftest import arun
from django_asyncdb import connections as seam
from django_asyncdb.asgi import with_lifespan
from testapp.models import Author


def test_lifespan_closes_pools(schema):
    app = with_lifespan(get_asgi_application())

    async def main():
        await Author.objects.acount()
        pool = seam.pool("default")
        assert pool.size >= 1
        inbox = asyncio.Queue()
        sent = []
        for message in ("lifespan.startup", "lifespan.shutdown"):
            inbox.put_nowait({"type": message})

        async def send(message):
            sent.append(message["type"])

        await app({"type": "lifespan"}, inbox.get, send)
        return sent, pool.size

    sent, size = arun(main)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert size == 0
