"""Measure one system on one workload in this process; print ops/s as JSON.

python -m benchmarks.worker SYSTEM DATABASE CONCURRENCY SECONDS
"""

import asyncio
import json
import random
import sys
import time

from benchmarks import bench_app


async def _drive(one_op, concurrency: int, seconds: float, task_context=None) -> float:
    """Run ``one_op`` from ``concurrency`` tasks for ``seconds``; return ops per second.

    ``task_context``, if given, makes the context manager each task runs inside.
    """
    done = 0
    deadline = time.perf_counter() + seconds

    async def run() -> None:
        nonlocal done
        rng = random.Random()
        while time.perf_counter() < deadline:
            await one_op(rng.randint(1, bench_app.ROWS))
            done += 1

    async def loop() -> None:
        if task_context is None:
            await run()
        else:
            async with task_context():
                await run()

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return done / (time.perf_counter() - start)


def django_sync(database: str, concurrency: int, seconds: float) -> float:
    bench_app.configure(database, native=False)
    from bench_models.models import Item

    done, rng = 0, random.Random()
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        Item.objects.get(pk=rng.randint(1, bench_app.ROWS))
        done += 1
    return done / (time.perf_counter() - start)


def django_async(database: str, concurrency: int, seconds: float) -> float:
    bench_app.configure(database, native=False)
    from asgiref.sync import ThreadSensitiveContext
    from bench_models.models import Item

    async def op(pk: int) -> None:
        await Item.objects.aget(pk=pk)

    # Each task runs in its own ThreadSensitiveContext, as ASGIHandler runs each request:
    # its sync work goes to that context's thread (and that thread's connection).
    return asyncio.run(_drive(op, concurrency, seconds, ThreadSensitiveContext))


def asyncdb(database: str, concurrency: int, seconds: float) -> float:
    bench_app.configure(database, native=True)
    from bench_models.models import Item

    import django_asyncdb

    async def main() -> float:
        await Item.objects.aget(pk=1)  # open the pool
        try:
            return await _drive(lambda pk: Item.objects.aget(pk=pk), concurrency, seconds)
        finally:
            await django_asyncdb.close_pools()

    return asyncio.run(main())


def raw_driver(database: str, concurrency: int, seconds: float) -> float:
    """The ceiling: the driver with a minimal queue of connections and no ORM."""
    sql = "SELECT id, name, value, price, created FROM bench_models_item WHERE id = "
    if database == "postgresql":
        import psycopg

        db = bench_app.PG

        async def connect():
            return await psycopg.AsyncConnection.connect(
                dbname=db["NAME"],
                user=db["USER"],
                host=db["HOST"],
                port=db["PORT"],
                password=db["PASSWORD"] or None,
                autocommit=True,
            )

        sql += "%s"
    else:
        import aiosqlite

        async def connect():
            return await aiosqlite.connect(bench_app.SQLITE["NAME"])

        sql += "?"

    async def main() -> float:
        pool: asyncio.Queue = asyncio.Queue()
        connections = [await connect() for _ in range(min(concurrency, 10))]
        for connection in connections:
            pool.put_nowait(connection)

        async def op(pk: int) -> None:
            connection = await pool.get()
            try:
                cursor = await connection.execute(sql, (pk,))
                await cursor.fetchone()
            finally:
                pool.put_nowait(connection)

        try:
            return await _drive(op, concurrency, seconds)
        finally:
            for connection in connections:
                await connection.close()

    return asyncio.run(main())


SYSTEMS = {
    "django-sync": django_sync,
    "django-async": django_async,
    "django-asyncdb": asyncdb,
    "raw-driver": raw_driver,
}

if __name__ == "__main__":
    system, database, concurrency, seconds = sys.argv[1:5]
    ops = SYSTEMS[system](database, int(concurrency), float(seconds))
    print(json.dumps({"ops": ops}))
