"""Where the time of a concurrent insert goes: CPU per ``acreate()`` against CPU per the very
same INSERT sent through ``django_asyncdb.cursor()``, in one process, rounds alternating.

    python -m benchmarks.insert_cost [--database postgresql] [--inserts 10000] [--tasks 50]

The difference is what Django's own ``create()``/``save()``/compiler code and the bridge
cost per insert; the cursor's figure is the driver, the event loop and this package's seam.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks import bench_app, data
from benchmarks.workloads import fields


async def _cpu_per_op(op: Callable[[int], Awaitable[Any]], inserts: int, tasks: int) -> float:
    """Microseconds of this process's CPU per op, ``tasks`` tasks sharing ``inserts`` ops."""
    each = inserts // tasks

    async def worker() -> None:
        for _ in range(each):
            await op(_next())

    start = time.process_time()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return (time.process_time() - start) / (each * tasks) * 1e6


_counter = iter(range(10**9))


def _next() -> int:
    return next(_counter)


async def measure(inserts: int, tasks: int, rounds: int) -> dict[str, float]:
    """Median CPU µs per insert of both paths."""
    from bench_models.models import Item

    import django_asyncdb

    table = Item._meta.db_table
    names = ("name", "value", "price", "created")
    sql = (
        f"INSERT INTO {table} ({', '.join(names)}) "
        f"VALUES ({', '.join(['%s'] * len(names))}) RETURNING id"
    )

    async def orm(n: int) -> None:
        await Item.objects.acreate(**fields(n))

    async def cursor(n: int) -> None:
        values = fields(n)
        async with django_asyncdb.cursor() as c:
            await c.execute(sql, [values[name] for name in names])

    figures: dict[str, list[float]] = {"acreate()": [], "same INSERT, cursor": []}
    await orm(_next())  # open the pool
    await cursor(_next())
    for _ in range(rounds):
        figures["acreate()"].append(await _cpu_per_op(orm, inserts, tasks))
        figures["same INSERT, cursor"].append(await _cpu_per_op(cursor, inserts, tasks))
    await django_asyncdb.close_pools()
    return {label: statistics.median(values) for label, values in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["postgresql", "sqlite", "mariadb"])
    parser.add_argument("--inserts", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    database = args.database or "postgresql"
    prepare = f"import benchmarks.__main__ as m; m.prepare({database!r})"
    subprocess.run([sys.executable, "-c", prepare], check=True)
    data.reset(database)
    bench_app.configure(database, native=True)
    result = asyncio.run(measure(args.inserts, args.tasks, args.rounds))
    print(f"CPU per insert, {args.tasks} tasks, {database}, median of {args.rounds} rounds:")
    for label, micros in result.items():
        print(f"  {label:22s} {micros:7.1f} µs")
    django = result["acreate()"] - result["same INSERT, cursor"]
    print(f"  {'Django + bridge':22s} {django:7.1f} µs")


if __name__ == "__main__":
    main()
