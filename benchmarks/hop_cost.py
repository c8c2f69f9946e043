"""What a thread hop costs: CPU per ``sync_to_async`` call as Django's ASGI handler makes them
(a thread-sensitive context per request, so a thread started per request), against the same
sync function run in django_asyncdb's bridge on the event loop.

    python -m benchmarks.hop_cost [--requests 2000] [--hops 8] [--rounds 5]

A request of ``--hops`` calls to a sync function that does nothing, the way Django runs a
request's middleware hooks, request signals and ``response.close()`` under ASGI. From
requests of one hop and of ``--hops`` hops: the CPU per hop and per request thread.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import ThreadSensitiveContext, sync_to_async


def _nothing() -> None:
    """A sync hook with no work in it."""


async def _cpu_per_request(request: Callable[[], Awaitable[None]], requests: int) -> float:
    """Microseconds of this process's CPU (all threads) per request, requests one by one."""
    start = time.process_time()
    for _ in range(requests):
        await request()
    return (time.process_time() - start) / requests * 1e6


def _in_threads(hops: int) -> Callable[[], Awaitable[None]]:
    async def request() -> None:
        async with ThreadSensitiveContext():  # as django.core.handlers.asgi does per request
            for _ in range(hops):
                await sync_to_async(_nothing)()

    return request


def _in_bridge(hops: int) -> Callable[[], Awaitable[None]]:
    from django_asyncdb import bridge

    async def request() -> None:
        for _ in range(hops):
            await bridge.run(_nothing)

    return request


async def measure(requests: int, hops: int, rounds: int) -> dict[str, float]:
    """Median CPU µs: per hop, per request thread, per bridged call."""
    one, many, bridged = [], [], []
    for _ in range(rounds):
        one.append(await _cpu_per_request(_in_threads(1), requests))
        many.append(await _cpu_per_request(_in_threads(hops), requests))
        bridged.append(await _cpu_per_request(_in_bridge(hops), requests) / hops)
    per_hop = (statistics.median(many) - statistics.median(one)) / (hops - 1)
    return {
        "hop": per_hop,
        "thread": statistics.median(one) - per_hop,
        "request": statistics.median(many),
        "bridge": statistics.median(bridged),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--hops", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if args.hops < 2:
        parser.error("--hops must be at least 2")
    from django.conf import settings

    settings.configure()  # the bridge imports Django's database layer; nothing connects
    found = asyncio.run(measure(args.requests, args.hops, args.rounds))
    print(f"CPU per sync_to_async hop:                   {found['hop']:8.1f} µs")
    print(f"CPU per request thread (start and join):     {found['thread']:8.1f} µs")
    print(f"CPU per request of {args.hops} hops, in threads:      {found['request']:8.1f} µs")
    print(f"CPU per call of the same function, in bridge: {found['bridge']:8.1f} µs")


if __name__ == "__main__":
    main()
