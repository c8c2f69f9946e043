"""Django's Redis cache from async code: Django's ``RedisCache`` (its async methods are
``sync_to_async`` over the sync ones) against ``django_asyncdb.cache.RedisCache``.

    python -m benchmarks.cache [--ops 3000] [--rounds 3] [--loop uvloop|asyncio]

Per backend: ``aget`` of a small pickled value and ``aset`` of it, one task after
another (client CPU µs per op, process CPU time, all threads) and 50 tasks at once (wall
ops/s). Redis at 127.0.0.1:6379, database 13 (flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks import loops

LOCATION = "redis://127.0.0.1:6379/13"
BACKENDS = {
    "django": "django.core.cache.backends.redis.RedisCache",
    "django-asyncdb": "django_asyncdb.cache.RedisCache",
}
VALUE = {"title": "A book", "price": "12.50", "tags": ["a", "b", "c"]}
TASKS = 50


def _configure() -> None:
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["django_asyncdb"],
        CACHES={
            name: {"BACKEND": path, "LOCATION": LOCATION, "KEY_PREFIX": name}
            for name, path in BACKENDS.items()
        },
    )
    django.setup()


async def _sequential(op: Callable[[int], Awaitable[Any]], ops: int) -> float:
    start = time.process_time()
    for n in range(ops):
        await op(n)
    return (time.process_time() - start) / ops * 1e6


async def _concurrent(op: Callable[[int], Awaitable[Any]], ops: int) -> float:
    per_task = ops // TASKS

    async def task(t: int) -> None:
        for n in range(per_task):
            await op(t * per_task + n)

    start = time.perf_counter()
    await asyncio.gather(*(task(t) for t in range(TASKS)))
    return per_task * TASKS / (time.perf_counter() - start)


async def measure(ops: int, rounds: int) -> dict[tuple[str, str], list[float]]:
    from asgiref.sync import ThreadSensitiveContext
    from django.core.cache import caches

    import django_asyncdb.cache

    figures: dict[tuple[str, str], list[float]] = {}
    for name in BACKENDS:
        cache = caches[name]
        await cache.aclear()
        await cache.aset_many({f"k{n}": VALUE for n in range(ops)})
    for _ in range(rounds):
        for name in BACKENDS:
            cache = caches[name]
            ops_of = {
                "aget": lambda n, c=cache: c.aget(f"k{n % ops}"),
                "aset": lambda n, c=cache: c.aset(f"k{n % ops}", VALUE),
            }
            for kind, op in ops_of.items():
                async with ThreadSensitiveContext():  # one request's thread, as Django's handler
                    for n in range(100):
                        await op(n)  # warm: connections open
                    cpu = await _sequential(op, ops)
                    wall = await _concurrent(op, ops)
                figures.setdefault((name, f"{kind} CPU µs/op"), []).append(cpu)
                figures.setdefault((name, f"{kind} ops/s, {TASKS} tasks"), []).append(wall)
    await django_asyncdb.cache.close_caches()
    return figures


def sync_reference(ops: int, rounds: int) -> dict[str, float]:
    """Django's sync get()/set() called from sync code (no loop, no thread): CPU µs/op."""
    from django.core.cache import caches

    cache = caches["django"]
    figures: dict[str, list[float]] = {"aget CPU µs/op": [], "aset CPU µs/op": []}
    for _ in range(rounds):
        for kind, op in (
            ("aget CPU µs/op", lambda n: cache.get(f"k{n % ops}")),
            ("aset CPU µs/op", lambda n: cache.set(f"k{n % ops}", VALUE)),
        ):
            start = time.process_time()
            for n in range(ops):
                op(n)
            figures[kind].append((time.process_time() - start) / ops * 1e6)
    cache.close()
    return {kind: statistics.median(values) for kind, values in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop", choices=loops.CHOICES)
    args = parser.parse_args()
    loop = loops.choose(args.loop)
    _configure()
    figures = loops.run(measure(args.ops, args.rounds))
    reference = sync_reference(args.ops, args.rounds)
    print(f"Redis cache from async code, median of {args.rounds} rounds ({loop}'s loop):\n")
    print(
        "| measure | Django's RedisCache | django_asyncdb.cache.RedisCache | ratio "
        "| Django's sync get()/set() from sync code |"
    )
    print("|---|---:|---:|---:|---:|")
    for measure_name in dict.fromkeys(kind for _, kind in figures):
        theirs = statistics.median(figures[("django", measure_name)])
        ours = statistics.median(figures[("django-asyncdb", measure_name)])
        sync = reference.get(measure_name)
        cell = f"{sync:,.0f}" if sync is not None else ""
        print(f"| {measure_name} | {theirs:,.0f} | {ours:,.0f} | {ours / theirs:.2f}x | {cell} |")


if __name__ == "__main__":
    main()
