"""Pools: parallel fan-out, exhaustion, cancellation, closing, and error mapping."""

import asyncio

import psycopg
import pytest
from django.db import DatabaseError, IntegrityError, OperationalError, connections, transaction

import django_asyncdb
from conftest import arun
from django_asyncdb import conf
from django_asyncdb import connections as seam
from django_asyncdb.backends import backend_for
from django_asyncdb.pool import Pool
from helpers import clear, insert, names

SLEEP = {
    "postgresql": "SELECT pg_backend_pid() FROM pg_sleep(%s)",
    "mariadb": "SELECT CONNECTION_ID() FROM (SELECT SLEEP(%s)) AS s",
}
# A query that keeps SQLite busy for a while: a long recursive count.
SLOW_SQLITE = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 30000000) "
    "SELECT count(*) FROM c"
)


def small_pool(alias, **overrides):
    settings = conf.AsyncSettings(alias, connections[alias].vendor, **overrides)
    return Pool(backend_for(settings))


async def fetch(alias, sql, params=None):
    async with django_asyncdb.cursor(alias) as cursor:
        await cursor.execute(sql, params)
        return await cursor.fetchall()


def test_gather_fans_out_over_several_connections():
    async def main():
        rows = await asyncio.gather(
            *(fetch("postgresql", SLEEP["postgresql"], [0.2]) for _ in range(5))
        )
        return {row[0][0] for row in rows}, seam.pool("postgresql").size

    if "postgresql" not in connections:
        pytest.skip("PostgreSQL not configured")
    pids, size = arun(main)
    assert len(pids) == 5  # five overlapping queries ran on five connections at once
    assert size == 5


def test_gather_of_orm_queries_on_every_vendor(alias):
    async def main():
        from testapp.models import Author, Book

        results = await asyncio.gather(
            *(Author.objects.using(alias).filter(pk=i).afirst() for i in range(1, 9)),
            Book.objects.using(alias).acount(),
        )
        return [a.pk for a in results[:-1]], results[-1]

    assert arun(main) == (list(range(1, 9)), 40)


def test_exhausted_pool_times_out(alias):
    async def main():
        pool = small_pool(alias, max_size=1, timeout=0.05)
        first = await pool.acquire()
        with pytest.raises(django_asyncdb.PoolTimeout, match="MAX_SIZE=1") as info:
            await pool.acquire()
        assert isinstance(info.value, OperationalError)
        pool.release(first)
        again = await pool.acquire()  # the freed connection is handed on
        assert again is first
        pool.release(again)
        await pool.close()
        with pytest.raises(django_asyncdb.PoolClosed):
            await pool.acquire()

    arun(main)


def test_waiter_gets_the_released_connection(alias):
    async def main():
        pool = small_pool(alias, max_size=1, timeout=5)
        first = await pool.acquire()
        waiter = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0.01)
        pool.release(first)
        assert await waiter is first
        pool.release(first)
        await pool.close()

    arun(main)


def test_cancelled_query_never_returns_a_busy_connection(alias):
    slow = SLEEP.get(alias, SLOW_SQLITE)
    params = [5] if alias in SLEEP else None

    async def main():
        await fetch(alias, "SELECT 1")
        pool = seam.pool(alias)
        task = asyncio.create_task(fetch(alias, slow, params))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert all(connection.reusable() for connection in pool._idle)
        assert await fetch(alias, "SELECT 42") == [(42,)]
        return pool.size

    assert arun(main) >= 1


def test_cancelled_task_inside_atomic_rolls_back(alias):
    slow = SLEEP.get(alias, SLOW_SQLITE)
    params = [5] if alias in SLEEP else None

    async def work(a):
        async with transaction.atomic(using=a):
            await insert(a, "never")
            await fetch(a, slow, params)

    async def main():
        await clear(alias)
        task = asyncio.create_task(work(alias))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        pool = seam.pool(alias)
        assert all(connection.reusable() for connection in pool._idle)
        return await names(alias)

    assert arun(main) == []


def test_close_pools_and_reopen(alias):
    async def main():
        await fetch(alias, "SELECT 1")
        first = seam.pool(alias)
        await django_asyncdb.close_pools(alias)
        assert first.size == 0
        await fetch(alias, "SELECT 1")
        assert seam.pool(alias) is not first

    arun(main)


def test_pools_are_per_event_loop(alias):
    async def main():
        await fetch(alias, "SELECT 1")
        return seam.pool(alias)

    assert arun(main) is not arun(main)


def test_connection_failure_is_a_django_operational_error():
    async def main():
        pool = small_pool("postgresql")
        pool.backend.wrapper.settings_dict  # noqa: B018 - exists
        settings = dict(connections["postgresql"].settings_dict)
        original = connections["postgresql"].settings_dict
        connections["postgresql"].settings_dict = {**settings, "PORT": "1"}
        try:
            with pytest.raises(OperationalError) as info:
                await pool.acquire()
            assert isinstance(info.value.__cause__, psycopg.OperationalError)
            assert pool.size == 0
        finally:
            connections["postgresql"].settings_dict = original

    if "postgresql" not in connections:
        pytest.skip("PostgreSQL not configured")
    arun(main)


BAD_SQL = {
    "syntax": ("SELEC 1", None),
    "missing_table": ("SELECT * FROM no_such_table", None),
    "integrity": ("INSERT INTO testapp_author (id, name) VALUES (1, 'dup')", None),
    "division": ("SELECT 1 / 0", None),
    "bad_cast": ("SELECT CAST('abc' AS INTEGER) + %s", [1]),
}


@pytest.mark.parametrize("case", sorted(BAD_SQL))
def test_driver_errors_map_like_django(alias, case):
    sql, params = BAD_SQL[case]
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, params)
            expected = ("ok", [tuple(row) for row in cursor.fetchall()])
    except DatabaseError as exc:
        expected = ("error", type(exc), type(exc.__cause__).__name__)

    async def main():
        try:
            return ("ok", [tuple(row) for row in await fetch(alias, sql, params)])
        except DatabaseError as exc:
            # The driver differs on MariaDB (MySQLdb / asyncmy): its class name must not.
            return ("error", type(exc), type(exc.__cause__).__name__)

    assert arun(main) == expected


def test_integrity_error_is_djangos(alias):
    async def main():
        with pytest.raises(IntegrityError) as info:
            await fetch(alias, "INSERT INTO testapp_tag (id, name) VALUES (%s, %s)", [1, "sf"])
        return info.value.__cause__

    cause = arun(main)
    assert type(cause).__module__.split(".")[0] in {"psycopg", "sqlite3", "asyncmy"}


def test_abandoned_loop_closes_its_connections(alias):
    kept = {}

    async def main():
        await fetch(alias, "SELECT 1")  # no close_pools(): the loop is simply dropped
        kept["pool"] = seam.pool(alias)
        kept["connection"] = kept["pool"]._idle[0]

    asyncio.run(main())
    asyncio.run(fetch(alias, "SELECT 1"))  # the next loop sweeps the closed one
    arun(asyncio.sleep, 0)
    assert kept["pool"].idle == 0
    connection = kept["connection"]
    assert connection.raw.closed if alias == "postgresql" else connection.closed


def test_settings_change_replaces_the_pools(alias):
    from django.test import override_settings

    async def main():
        await fetch(alias, "SELECT 1")
        before = seam.pool(alias)
        with override_settings(TIME_ZONE="Asia/Tokyo"):
            after = seam.pool(alias)
            await fetch(alias, "SELECT 1")
        await asyncio.sleep(0.05)
        return before, after

    before, after = arun(main)
    assert before is not after
    assert before.size == 0
