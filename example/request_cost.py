"""What one request costs the server process, handler by handler, without a server.

    python example/request_cost.py [--requests 2000] [--rounds 3] [--profile HANDLER]
                                   [--callgrind] [--page PAGE] [--database postgresql]

The bookshop's pages called in this process, one request after another: the sync views
through Django's WSGI handler (as gunicorn calls it), the async views through Django's
ASGI handler and through the package's (as uvicorn calls them, with the same ASGI
messages), on a fresh seeded database (SQLite, or PostgreSQL on 127.0.0.1 with --database)
and Redis when it is reachable (else local memory). Reports client CPU µs per request
(process CPU time, all threads: Django's handler hops to threads); the HTTP server's own
work (parsing, sockets) is not in it.
``--callgrind`` counts instructions per request instead (valgrind, two runs of different
request counts per handler and page, the difference over the request difference: steady
whatever the machine is doing). ``--profile asgi-asyncdb`` (or ``wsgi``, ``asgi-django``)
prints where a handler's time goes (cProfile, cumulative).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PAGES = {"detail": "books/1.json", "cached": "cached/", "fanout": "fanout/", "books": "books/"}
HANDLERS = ("wsgi", "asgi-django", "asgi-asyncdb")


def _environ(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


def wsgi_caller(path: str) -> Callable[[], None]:
    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()
    statuses: list[str] = []

    def start_response(status: str, headers: list[Any]) -> None:
        statuses.append(status)

    def request() -> None:
        response = handler(_environ(path), start_response)
        b"".join(response)
        response.close()
        if not statuses.pop().startswith("200"):
            raise SystemExit(f"{path}: not 200 through the WSGI handler")

    return request


def asgi_caller(path: str, ours: bool) -> Callable[[], Any]:
    if ours:
        from django_asyncdb.asgi import ASGIHandler

        handler: Any = ASGIHandler()
    else:
        from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler

        handler = DjangoASGIHandler()

    async def request() -> None:
        done = asyncio.Event()
        received = False
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()  # the client stays until the response is sent
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await handler(_scope(path), receive, send)
        done.set()
        if sent[0]["status"] != 200:
            raise SystemExit(f"{path}: {sent[0]['status']} through {type(handler)}")

    return request


def measure(handler: str, page: str, requests: int, profile: bool = False) -> float:
    """CPU µs per request of ``page`` through ``handler`` (after a warm-up)."""
    prefix = "/sync/" if handler == "wsgi" else "/async/"
    path = prefix + PAGES[page]
    profiler = cProfile.Profile() if profile else None
    if handler == "wsgi":
        call = wsgi_caller(path)
        for _ in range(50):
            call()
        start = time.process_time()
        if profiler:
            profiler.enable()
        for _ in range(requests):
            call()
        if profiler:
            profiler.disable()
        cpu = time.process_time() - start
    else:
        acall = asgi_caller(path, ours=handler == "asgi-asyncdb")

        async def run() -> float:
            for _ in range(50):
                await acall()
            start = time.process_time()
            if profiler:
                profiler.enable()
            for _ in range(requests):
                await acall()
            if profiler:
                profiler.disable()
            return time.process_time() - start

        import uvloop

        cpu = uvloop.run(run())
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(40)
    return cpu / requests * 1e6


PREPARED = "BOOKSHOP_COST_PREPARED"


def configure(database: str = "sqlite") -> str:
    """The bookshop's settings on a fresh seeded database, SQLite or PostgreSQL (the
    parent's, in a child run); Redis if reachable."""
    sys.path.insert(0, str(HERE))
    import harness

    if not os.environ.get(PREPARED):
        url = harness.sqlite_url(tempfile.mkdtemp(prefix="bookshop-cost-"))
        if database == "postgresql":
            url = harness.postgresql_url("bookshop_cost") or ""
            if not url:
                raise SystemExit("PostgreSQL at 127.0.0.1:5432 is not reachable")
        # Persistent sync connections, as the study's WSGI servers have them.
        env = harness.base_env(DATABASE_URL=url, CONN_MAX_AGE="60")
        if harness.reachable(6379):
            env["REDIS_URL"] = "redis://127.0.0.1:6379/14"
            env["CACHE_PREFIX"] = f"cost{os.getpid()}"
        harness.prepare(env)
        env[PREPARED] = "1"
        os.environ.update(env)
    import django

    django.setup()
    return "Redis" if "REDIS_URL" in os.environ else "local memory"


def instructions(handler: str, page: str, requests: int) -> float:
    """Instructions per request: two callgrind runs of a child, requests/4 and requests."""
    sys.path.insert(0, str(HERE.parent))
    from benchmarks.__main__ import _callgrind_total

    totals = []
    with tempfile.TemporaryDirectory() as folder:
        for count in (requests // 4, requests):
            out = os.path.join(folder, f"callgrind.{count}")
            command = [
                *("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"),
                *(sys.executable, __file__, "--child", handler, page, str(count)),
            ]
            env = {**os.environ, "PYTHONHASHSEED": "0"}
            subprocess.run(command, check=True, capture_output=True, env=env)
            totals.append(_callgrind_total(Path(out).read_text()))
    return (totals[1] - totals[0]) / (requests - requests // 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", choices=HANDLERS)
    parser.add_argument("--page", choices=list(PAGES), help="only this page")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    cache = configure(args.database)
    where = "SQLite" if args.database == "sqlite" else "PostgreSQL"
    if args.child:
        handler, page, count = args.child
        measure(handler, page, int(count))
        return
    pages = [args.page] if args.page else list(PAGES)
    if args.profile:
        for page in pages:
            print(f"== {page} through {args.profile}")
            measure(args.profile, page, args.requests, profile=True)
        return
    if args.callgrind:
        print(f"Thousands of instructions per request ({where}, cache: {cache}):\n")
    else:
        print(f"CPU µs per request, median of {args.rounds} rounds ({where}, cache: {cache}):\n")
    print("| page | " + " | ".join(HANDLERS) + " |")
    print("|---|" + "---:|" * len(HANDLERS))
    for page in pages:
        if args.callgrind:
            figures = {h: instructions(h, page, args.requests) / 1000 for h in HANDLERS}
        else:
            figures = {
                handler: statistics.median(
                    measure(handler, page, args.requests) for _ in range(args.rounds)
                )
                for handler in HANDLERS
            }
        print(f"| {page} | " + " | ".join(f"{figures[h]:,.0f}" for h in HANDLERS) + " |")


if __name__ == "__main__":
    main()
