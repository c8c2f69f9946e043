"""A tiny upstream HTTP service for the external-API views: answers JSON after a delay.

    uvicorn --app-dir example upstream:app --port 8001

UPSTREAM_DELAY_MS sets the delay (default 50); a ``delay`` query parameter overrides it.
"""

import asyncio
import json
import os
from urllib.parse import parse_qs

DELAY_MS = float(os.environ.get("UPSTREAM_DELAY_MS", "50"))


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    """A plain ASGI app: no framework, so its own cost stays small next to the delay."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    query = parse_qs(scope.get("query_string", b"").decode())
    delay = float(query.get("delay", [DELAY_MS])[0])
    await asyncio.sleep(delay / 1000)
    body = json.dumps({"service": "upstream", "delay_ms": delay, "path": scope["path"]}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
